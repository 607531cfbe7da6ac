"""The sync server: `serve`, `Server` and `ServerConnection`."""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeAlias

import anyio
import anyio.abc

from .._routing import route as async_route
from .._server import (
    Server as AsyncServer,
    ServerConnection as AsyncServerConnection,
    check_close_frame,
    serve as async_serve,
)
from .._stats import ServerStats
from .._unix import unix_serve as async_unix_serve
from ..sansio import State
from ._connection import Connection, EventLoopThread


__all__ = ["Server", "ServerConnection", "route", "serve", "unix_serve"]


#: Seconds between checks for a pending KeyboardInterrupt in `Server.serve_forever`.
_SIGNAL_CHECK_INTERVAL = 1.0

#: Which server's handler, if any, the current thread runs.
_handler_thread = threading.local()


class ServerConnection(Connection):
    """A server connection with a blocking API, as passed to the handler of `serve`."""

    async_connection: AsyncServerConnection

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol negotiated during the opening handshake, if any."""
        return self.async_connection.subprotocol

    def __init__(
        self, loop: EventLoopThread, connection: AsyncServerConnection, server: Server
    ) -> None:
        super().__init__(loop, connection)
        #: The server that accepted this connection.
        self.server = server


#: A connection handler for `serve`: a function run in a thread of its own.
Handler: TypeAlias = Callable[[ServerConnection], None]

#: A handler for `route`: called with the connection and the path parameters.
RouteHandler: TypeAlias = Callable[..., None]


class Server:
    """A running WebSocket server, as given by `serve`.

    Use it as a context manager (leaving the block shuts it down), and call
    `serve_forever` to block until `shutdown` is called from another thread.
    """

    def __init__(self, loop: EventLoopThread, handler: Handler) -> None:
        self._loop = loop
        #: The blocking portal of the event loop that runs the server.
        self.portal = loop.portal
        self.handler = handler
        #: The async server, to use from the event loop through `portal`.
        self.async_server: AsyncServer
        self._context: AbstractContextManager[AsyncServer]
        self._connections: dict[AsyncServerConnection, ServerConnection] = {}
        self._lock = threading.Lock()
        self._shutting_down = False
        self._closed = threading.Event()

    # Attributes ------------------------------------------------------------

    @property
    def logger(self) -> Any:
        """The server's logger."""
        return self.async_server.logger

    @property
    def connections(self) -> set[ServerConnection]:
        """Open connections, whose handshake succeeded and which aren't closing."""
        with self._lock:
            connections = list(self._connections.values())
        return {connection for connection in connections if connection.state is State.OPEN}

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [
            listener.extra(anyio.abc.SocketAttribute.raw_socket)
            for listener in self.async_server.listeners
        ]

    @property
    def socket(self) -> socket.socket:
        """The first listening socket, as in websockets."""
        return self.sockets[0]

    @property
    def port(self) -> int:
        """Port of the first listener, handy with ``port=0``."""
        return self.async_server.port

    def stats(self) -> ServerStats:
        """A snapshot of the server's counters: `anyws.Server.stats`, read in its event loop."""
        return self.portal.call(self.async_server.stats)

    def fileno(self) -> int:
        """The file descriptor of the first listening socket."""
        return self.socket.fileno()

    # Running ---------------------------------------------------------------

    def serve_forever(self) -> None:
        """Block until `shutdown` is called from another thread.

        Connections are served from the moment `serve` returns; this method
        only waits. It returns once the server is shut down. KeyboardInterrupt
        (Ctrl-C) stops the wait; leaving the ``with`` block then shuts down.
        """
        self._loop.check_thread("serve_forever")
        # Wake up now and then: a Ctrl-C that lands just before the thread blocks
        # is only handled when it wakes up (a race in CPython's lock waits).
        while not self._closed.wait(_SIGNAL_CHECK_INTERVAL):
            pass

    def shutdown(self, close_connections: bool = True, code: int = 1001, reason: str = "") -> None:
        """Stop accepting connections, close the open ones, and stop the event loop.

        Each handler that still runs gets ``close_timeout`` to return; a thread
        blocked in `~Connection.recv` wakes up with
        `~anyws.exceptions.ConnectionClosedOK`. Handlers still running after that
        are abandoned: their daemon threads never hold up interpreter exit, and
        their calls on the connection raise `~anyws.exceptions.ConnectionClosed`.
        Idempotent; `serve_forever` returns.

        Args:
            close_connections: Close open connections with ``code`` and
                ``reason`` (1001, going away, by default); with ``False``,
                handlers get ``close_timeout`` to end on their own.
            code, reason: The close frame sent to open connections.

        Raises:
            ProtocolError: ``code`` may not be sent, or ``reason`` is too long;
                nothing happened.
            RuntimeError: Called from a handler of this server (it would wait for
                itself) or from the event loop thread.
        """
        self._loop.check_thread("shutdown")
        if close_connections:
            check_close_frame(code, reason)  # before anything happens
        if getattr(_handler_thread, "server", None) is self:
            raise RuntimeError(
                "cannot call shutdown() from a connection handler of this server: "
                "it waits for every handler to return, this one included"
            )
        with self._lock:
            shutting_down, self._shutting_down = self._shutting_down, True
        if shutting_down:
            self._closed.wait()
            return
        try:  # the async server logs "server closing" and "server closed"
            self.portal.call(self._aclose, close_connections, code, reason)
            self._context.__exit__(None, None, None)
        except BaseException:
            # Interrupted (Ctrl-C while handlers finish): cancel what is left.
            self._loop.stop(cancel=True)
            raise
        else:
            self._loop.stop()
        finally:
            self._closed.set()

    async def _aclose(self, close_connections: bool, code: int, reason: str) -> None:
        await self.async_server.close(close_connections, code, reason)

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    # The async side --------------------------------------------------------

    async def _handle(
        self, connection: AsyncServerConnection, handler: Handler | None = None
    ) -> None:
        """The async handler: run the sync handler in a thread of its own and wait for it.

        ``handler`` replaces the server's (`route` passes the one that the path chose).

        Its exception is re-raised here, so the async server logs it and closes
        with 1011. Cancellation (shutdown after ``close_timeout``) abandons the
        thread.
        """
        sync_connection = ServerConnection(self._loop, connection, self)
        portal = self.portal
        done = anyio.Event()
        failure: list[Exception] = []

        run = self.handler if handler is None else handler

        def run_handler() -> None:
            _handler_thread.server = self
            try:
                run(sync_connection)
            except Exception as exc:
                failure.append(exc)
            finally:
                _handler_thread.server = None
                try:
                    portal.call(done.set)
                except RuntimeError:  # the handler was abandoned and the loop stopped
                    pass

        with self._lock:
            self._connections[connection] = sync_connection
        try:
            thread = threading.Thread(
                target=run_handler, name=f"anyws handler {connection.id}", daemon=True
            )
            thread.start()
            await done.wait()
        finally:
            with self._lock:
                del self._connections[connection]
        if failure:
            raise failure[0]


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **serve_kwargs: Any,
) -> Server:
    """Run a WebSocket server: ``with serve(handler, host, port) as server: ...``.

    The server's event loop runs in a daemon thread; it accepts connections
    as soon as `serve` returns. Each connection runs ``handler(connection)``, a
    plain function, in a thread of its own, with a `ServerConnection`. When the
    handler returns, the connection closes with 1000; when it raises, with 1011,
    and the error is logged with its traceback.

    Args:
        handler: The function serving one connection; it runs in its own thread.
        host: The interface(s) to listen on; ``None`` for all of them.
        port: The port; ``0`` picks a free one (see `Server.port`).
        backend: The anyio backend of the event loop: ``"asyncio"`` or ``"trio"``.
        backend_options: Options for that backend, as for `anyio.run`
            (``{"use_uvloop": True}`` runs asyncio on uvloop).
        **serve_kwargs: Passed to `anyws.serve`: ``subprotocols``, ``ssl``,
            ``close_timeout``, ``sock`` (a listening socket made elsewhere)...
            ``process_request`` and ``process_response`` run in the event loop,
            with the async `anyws.ServerConnection`: they must not block.

    Raises:
        OSError: The address is in use, for example.
        LookupError, ImportError: The backend doesn't exist, or isn't installed.
    """
    return _start(
        handler,
        lambda server: async_serve(server._handle, host, port, **serve_kwargs),
        backend,
        backend_options,
    )


def unix_serve(
    handler: Handler,
    path: str | os.PathLike[str],
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **serve_kwargs: Any,
) -> Server:
    """Run a WebSocket server on a Unix socket: ``with unix_serve(handler, path) as server:``.

    The blocking `anyws.unix_serve`: as `serve`, except that the server listens
    on the Unix socket at ``path`` instead of TCP. `Server.sockets` holds the
    listening socket; there is no `Server.port`.

    Args:
        handler: The function serving one connection; it runs in its own thread.
        path: Where to create the socket.
        backend, backend_options: As for `serve`.
        **serve_kwargs: Passed to `anyws.unix_serve`: ``mode``, ``ssl``...

    Raises:
        OSError: The socket couldn't be created.
        TypeError: ``host``, ``port`` or ``reuse_port`` was given.
    """
    return _start(
        handler,
        lambda server: async_unix_serve(server._handle, path, **serve_kwargs),
        backend,
        backend_options,
    )


def route(
    handlers: Mapping[str, RouteHandler],
    host: str | None = None,
    port: int | None = None,
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **serve_kwargs: Any,
) -> Server:
    """Run a WebSocket server that dispatches each connection on its request path.

    The blocking `anyws.route`, with the same patterns: ``"/rooms/{room}"``
    calls ``handler(connection, room="lobby")`` for ``/rooms/lobby``, in a
    thread of its own; any other path gets ``404 Not Found`` before the upgrade.

    Args:
        handlers: Path patterns mapped to handlers, plain functions called
            with the connection and the path parameters as keyword arguments.
        host, port, backend, backend_options: As for `serve`.
        **serve_kwargs: Passed to `anyws.route`; its ``process_request`` runs
            before routing, in the event loop.

    Raises:
        ValueError: A pattern is invalid (see `anyws.route`).
        OSError: The address is in use, for example.
    """

    def make(server: Server) -> async_serve:
        def run_in_thread(handler: RouteHandler) -> Callable[..., Any]:
            async def run(connection: AsyncServerConnection, **params: str) -> None:
                await server._handle(connection, functools.partial(handler, **params))

            return run

        routes = {pattern: run_in_thread(handler) for pattern, handler in handlers.items()}
        return async_route(routes, host, port, **serve_kwargs)

    return _start(_unrouted, make, backend, backend_options)


def _unrouted(connection: ServerConnection) -> None:  # pragma: no cover - route() passes its own
    raise AssertionError("a routed connection runs the handler of its path")


def _start(
    handler: Handler,
    make_server: Callable[[Server], async_serve],
    backend: str,
    backend_options: dict[str, Any] | None,
) -> Server:
    """Start an event loop thread and enter the async server that ``make_server`` gives."""
    loop = EventLoopThread(backend, backend_options, name="anyws sync server")
    try:
        server = Server(loop, handler)
        # Built in the loop: the async server creates anyio primitives.
        async_context = loop.portal.call(lambda: make_server(server))
        context = loop.portal.wrap_async_context_manager(async_context)
        server.async_server = context.__enter__()
        server._context = context
    except BaseException:
        loop.stop(cancel=True)
        raise
    return server
