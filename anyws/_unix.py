"""WebSocket over Unix sockets: `unix_connect` and `unix_serve`, on every backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from ._client import connect
from ._server import Handler, serve
from .sansio._uri import WebSocketURI


__all__ = ["unix_connect", "unix_serve"]


class unix_connect(connect):  # a context manager used like a function, as in websockets
    """Open a WebSocket connection over a Unix socket: ``async with unix_connect(path)``.

    The same as `connect`, except that the connection goes to the Unix socket
    at ``path`` instead of the URI's host and port; the URI still gives the
    ``Host`` header, the request path and, with ``wss://``, the TLS server name.
    Proxies don't apply. A redirect may only lead to the same origin (scheme,
    host and port): there is no other place to go over the same socket.

    Args:
        path: The path of the server's Unix socket (on Linux, a name starting
            with a NUL byte for the abstract namespace); ``None`` when ``sock``
            is given.
        uri: The URI to request; ``ws://localhost/`` by default, or
            ``wss://localhost/`` when ``ssl`` is given.
        **kwargs: The keyword arguments of `connect`; ``sock``, a connected
            Unix socket, replaces ``path``.

    Raises:
        OSError: Connecting failed (`FileNotFoundError` when there is no socket
            at ``path``, `ConnectionRefusedError` when nobody listens on it).
        ValueError: A redirect points to another origin; not exactly one of
            ``path`` and ``sock`` was given.

    Otherwise as `connect`: `TimeoutError` after ``open_timeout`` and
    `InvalidHandshake` for a failed opening handshake.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, uri: str | None = None, **kwargs: Any
    ) -> None:
        if (path is None) == (kwargs.get("sock") is None):
            raise ValueError("unix_connect() needs either path or sock")
        if uri is None:
            uri = "ws://localhost/" if kwargs.get("ssl") is None else "wss://localhost/"
        super().__init__(uri, **kwargs)
        self.path = path

    async def _open_stream(self, uri: WebSocketURI) -> anyio.abc.AnyByteStream:
        """Connect to the Unix socket at `path`; then TLS, for ``wss://``."""
        first = self.uri
        if (uri.secure, uri.host, uri.port) != (first.secure, first.host, first.port):
            scheme = "wss" if uri.secure else "ws"
            host = f"[{uri.host}]" if ":" in uri.host else uri.host
            raise ValueError(
                f"cannot follow cross-origin redirect to {scheme}://{host}:{uri.port}"
                f"{uri.resource_name} with a Unix socket"
            )
        if self.path is None:  # a socket given
            return await super()._open_stream(uri)
        stream: anyio.abc.AnyByteStream = await anyio.connect_unix(self.path)
        if uri.secure:
            stream = await self._start_tls(stream, uri)
        return stream


class unix_serve(serve):  # a context manager used like a function, as in websockets
    """Run a WebSocket server on a Unix socket: ``async with unix_serve(handler, path)``.

    The same as `serve`, except that the server listens on the Unix socket at
    ``path`` (behind a reverse proxy such as nginx, for example) instead of TCP.
    A socket left at ``path`` by a previous run is replaced; any other kind of
    file there makes binding fail. The socket file is removed when the server
    closes, unless something else took its place in the meantime.
    `Server.sockets` lists ``path``; there is no `Server.port`.

    Args:
        handler: The coroutine function serving one connection.
        path: Where to create the socket (on Linux, a name starting with a NUL
            byte binds in the abstract namespace, without a file); ``None`` when
            ``sock`` is given.
        mode: Permissions to give the socket file (``0o660`` lets the group
            connect, for example); by default, as the umask allows.
        **kwargs: The keyword arguments of `serve`, but for ``host``, ``port``
            and ``reuse_port``; ``sock``, a bound Unix socket (inherited, or
            from systemd socket activation), replaces ``path``: the server
            closes it when it closes, and leaves its file alone.

    Raises:
        OSError: The socket couldn't be created (on entering).
        TypeError: ``host``, ``port`` or ``reuse_port`` was given.
        ValueError: Not exactly one of ``path`` and ``sock`` was given, or
            ``mode`` came with ``sock``.
    """

    def __init__(
        self,
        handler: Handler,
        path: str | os.PathLike[str] | None = None,
        *,
        mode: int | None = None,
        **kwargs: Any,
    ) -> None:
        for name in ("host", "port", "reuse_port"):  # TCP only
            if name in kwargs:
                raise TypeError(f"unix_serve() got an unexpected keyword argument '{name}'")
        if (path is None) == (kwargs.get("sock") is None):
            raise ValueError("unix_serve() needs either path or sock")
        if mode is not None and path is None:
            raise ValueError("unix_serve() can't set the mode of a socket given as sock")
        super().__init__(handler, **kwargs)
        self.path = path
        self.mode = mode

    async def _create_listeners(self) -> list[anyio.abc.Listener[Any]]:
        if self.path is None:  # a socket given
            return await super()._create_listeners()
        listener = await anyio.create_unix_listener(self.path, mode=self.mode, backlog=self.backlog)
        return [_UnixListener(listener, os.fspath(self.path))]


class _UnixListener(anyio.abc.Listener[anyio.abc.SocketStream]):
    """A Unix socket listener that removes its socket file when closed."""

    def __init__(self, listener: anyio.abc.SocketListener, path: str) -> None:
        self._listener = listener
        self._path = path
        self._identity: tuple[int, int] | None = None
        if not path.startswith("\0"):  # Linux's abstract namespace has no file
            stat = os.stat(path)
            self._identity = (stat.st_dev, stat.st_ino)

    async def accept(self) -> anyio.abc.SocketStream:
        return await self._listener.accept()

    async def serve(
        self,
        handler: Callable[[anyio.abc.SocketStream], Any],
        task_group: anyio.abc.TaskGroup | None = None,
    ) -> None:
        await self._listener.serve(handler, task_group)

    async def aclose(self) -> None:
        try:
            await self._listener.aclose()
        finally:
            self._remove_file()

    def _remove_file(self) -> None:
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            stat = os.stat(self._path)
            # Another server may have replaced the file since: leave its socket alone.
            if (stat.st_dev, stat.st_ino) == identity:
                os.unlink(self._path)
        except FileNotFoundError:
            pass

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._listener.extra_attributes
