"""The sync client: `connect` and `ClientConnection`."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from .._client import ClientConnection as AsyncClientConnection, connect as async_connect
from .._unix import unix_connect as async_unix_connect
from ._connection import Connection, EventLoopThread


__all__ = ["ClientConnection", "connect", "unix_connect"]


class ClientConnection(Connection):
    """A client connection with a blocking API, as given by `connect`.

    Use it as a context manager, ``with connect(uri) as ws: ...``, or call
    `close` when done: closing also stops the connection's event loop thread.
    """

    async_connection: AsyncClientConnection

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol negotiated during the opening handshake, if any."""
        return self.async_connection.subprotocol

    def __init__(
        self,
        loop: EventLoopThread,
        connection: AsyncClientConnection,
        context: AbstractContextManager[AsyncClientConnection],
    ) -> None:
        super().__init__(loop, connection)
        self._context = context
        self._exit_lock = threading.Lock()
        self._exited = False

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close with 1000, or 1011 when the block raised (abort on KeyboardInterrupt)."""
        self._exit(exc_type, exc, traceback)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake, wait until the connection is closed, stop its loop.

        Waits at most ``close_timeout`` for the peer; then aborts the transport.
        Idempotent and safe to call from any thread but the event loop's: a
        thread blocked in `recv` wakes up with `~anyws.exceptions.ConnectionClosedOK`.

        Raises:
            ProtocolError: ``code`` may not be sent, or ``reason`` is too long.
            RuntimeError: Called from the connection's event loop thread.
        """
        self._loop.check_thread("close")
        super().close(code, reason)
        self._exit(None, None, None)

    def _exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Leave the async `connect` context (in the task that entered it), stop the loop."""
        self._loop.check_thread("close")
        with self._exit_lock:
            if self._exited:
                return
            self._exited = True
        try:
            self._context.__exit__(exc_type, exc, traceback)
        except BaseException:
            self._loop.stop(cancel=True)
            raise
        self._loop.stop()


def connect(
    uri: str,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **connect_kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket connection: ``with connect(uri) as websocket: ...``.

    The connection runs in an event loop of its own, in a daemon thread, so
    the returned connection can be used from any thread (but that one). Leaving
    the ``with`` block, or calling `ClientConnection.close`, performs the closing
    handshake (1000, or 1011 when the block raised) and stops the loop.

    Args:
        uri: A ``ws://`` or ``wss://`` URI.
        backend: The anyio backend of the event loop: ``"asyncio"`` or ``"trio"``.
        backend_options: Options for that backend, as for `anyio.run`
            (``{"use_uvloop": True}`` runs asyncio on uvloop).
        **connect_kwargs: Passed to `anyws.connect`: ``open_timeout``,
            ``subprotocols``, ``ssl``, ``close_timeout``, ``sock`` (a connected
            socket)... A ``logger``, a
            ``create_connection`` factory or a ``stream`` are used in the event
            loop, as with the async API.

    Raises:
        InvalidURI: ``uri`` isn't a valid WebSocket URI.
        OSError: The TCP connection failed; `ssl.SSLError` for TLS.
        TimeoutError: ``open_timeout`` passed.
        InvalidHandshake: The opening handshake failed; `InvalidStatus` when the
            server answered with a status other than 101.
        LookupError, ImportError: The backend doesn't exist, or isn't installed.
    """
    return _open(async_connect(uri, **connect_kwargs), backend, backend_options, uri)


def unix_connect(
    path: str | os.PathLike[str],
    uri: str | None = None,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **connect_kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket connection over a Unix socket: ``with unix_connect(path) as ws: ...``.

    The blocking `anyws.unix_connect`: as `connect`, except that the connection
    goes to the Unix socket at ``path``; ``uri`` (``ws://localhost/`` by
    default) gives the ``Host`` header and the request path.

    Args:
        path: The path of the server's Unix socket.
        uri: The URI to request.
        backend, backend_options: As for `connect`.
        **connect_kwargs: Passed to `anyws.unix_connect`.

    Raises:
        OSError: Connecting failed (`FileNotFoundError` when there is no socket
            at ``path``, `ConnectionRefusedError` when nobody listens on it).

    Otherwise as `connect`.
    """
    context_manager = async_unix_connect(path, uri, **connect_kwargs)
    return _open(context_manager, backend, backend_options, f"unix:{os.fsdecode(path)}")


def _open(
    context_manager: async_connect,
    backend: str,
    backend_options: dict[str, Any] | None,
    target: str,
) -> ClientConnection:
    """Enter ``context_manager`` in an event loop thread of its own."""
    loop = EventLoopThread(backend, backend_options, name=f"anyws sync client {target}")
    try:
        context = loop.portal.wrap_async_context_manager(context_manager)
        connection = context.__enter__()
    except BaseException:
        # Interrupted, the opening handshake may still run: cancel it.
        loop.stop(cancel=True)
        raise
    return ClientConnection(loop, connection, context)
