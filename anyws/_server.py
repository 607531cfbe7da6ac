"""The server: `serve`, `Server` and `ServerConnection`."""

from __future__ import annotations

import errno
import http
import inspect
import logging
import math
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ._connection import TRANSPORT_ERRORS, Connection, _Running
from .exceptions import ConnectionClosed
from .sansio import Request, Response, ServerProtocol
from .sansio._handshake import SERVER
from .sansio._protocol import LoggerLike
from .sansio._server import SelectSubprotocol
from .sansio.extensions import ServerExtensionFactory, enable_server_permessage_deflate


__all__ = ["Server", "ServerConnection", "serve"]

#: What a failed server-side TLS handshake raises: the transport errors, and EOF.
_TLS_HANDSHAKE_ERRORS: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, anyio.EndOfStream)

_ACCEPT_CAPACITY_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

Handler: TypeAlias = Callable[["ServerConnection"], Awaitable[None]]
ProcessRequest: TypeAlias = Callable[
    ["ServerConnection", Request], "Response | Awaitable[Response | None] | None"
]
ProcessResponse: TypeAlias = Callable[
    ["ServerConnection", Request, Response], "Response | Awaitable[Response | None] | None"
]


class ServerConnection(Connection):
    """A server connection, as passed to the handler of `serve`.

    Subclass it and pass a factory to `serve` as ``create_connection`` to add
    behaviour; ``functools.partial(MyConnection, extra=42)`` passes extra arguments.
    """

    protocol: ServerProtocol

    def __init__(
        self,
        stream: anyio.abc.AnyByteStream,
        protocol: ServerProtocol,
        *,
        server: Server | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | None = 16,
        write_limit: int = 2**15,
    ) -> None:
        super().__init__(
            stream,
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        #: The server that accepted this connection.
        self.server = server

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol selected during the handshake, if any."""
        return self.protocol.subprotocol

    def respond(self, status: int | http.HTTPStatus, text: str) -> Response:
        """Build a plain text HTTP response, to return from ``process_request``."""
        return self.protocol.reject(status, text)


class Server:
    """A running WebSocket server, as given by `serve`.

    Attributes:
        connections: The open connections (after their handshake succeeded).
        logger: The server's logger.
    """

    def __init__(self, logger: LoggerLike) -> None:
        self.connections: set[ServerConnection] = set()
        self.logger = logger
        self.listeners: list[anyio.abc.Listener[Any]] = []
        self._handlers: set[anyio.CancelScope] = set()
        self._handlers_done = anyio.Event()
        self._handlers_done.set()
        self._accepting = anyio.CancelScope()
        self._closing = False
        self._closed = anyio.Event()
        self.close_timeout: float | None = 10

    @property
    def sockets(self) -> list[Any]:
        """The bound addresses, as ``(host, port)`` or ``(host, port, flow, scope)``."""
        return [
            listener.extra(anyio.abc.SocketAttribute.local_address) for listener in self.listeners
        ]

    @property
    def port(self) -> int:
        """The port of the first listener; handy with ``port=0``."""
        return int(self.listeners[0].extra(anyio.abc.SocketAttribute.local_port))

    async def serve_forever(self) -> None:
        """Wait until the server is closed.

        Cancellation stops the wait only; leaving `serve` closes the server.
        """
        await self._closed.wait()

    async def close(self, close_connections: bool = True) -> None:
        """Stop accepting connections and close the server.

        With ``close_connections``, close every connection with 1001 (going away)
        and wait for the handlers to return, at most ``close_timeout``; then
        cancel what is left. Idempotent.
        """
        if not self._closing:
            self._closing = True
            self._accepting.cancel()
            for listener in self.listeners:
                await anyio.aclose_forcefully(listener)
            if close_connections:
                async with anyio.create_task_group() as task_group:
                    for connection in list(self.connections):
                        task_group.start_soon(connection.close, 1001)
            timeout = self.close_timeout
            with anyio.move_on_after(math.inf if timeout is None else timeout):
                await self._handlers_done.wait()
            for scope in list(self._handlers):
                scope.cancel()
            self._closed.set()
        await self._closed.wait()

    async def aclose(self) -> None:
        """Close the server and its connections: anyio's `~anyio.abc.AsyncResource` protocol."""
        await self.close()


class serve:  # a context manager used like a function, as in websockets
    """Run a WebSocket server: ``async with serve(handler, host, port) as server: ...``.

    Each connection runs ``handler(connection)`` in a task of a task group that
    this context owns, with the connection's own background tasks beside it.
    When the handler returns, the connection closes with 1000; when it raises, with
    1011, and the error is logged with its traceback. Leaving the block closes the
    server: connections close with 1001 and handlers get ``close_timeout`` to
    return before they are cancelled.

    Args:
        handler: The coroutine function serving one connection.
        host: The interface(s) to listen on; ``None`` for all of them.
        port: The port; ``0`` picks a free one (see `Server.port`).
        origins: Acceptable ``Origin`` values (``None`` in the list allows
            requests without one); other origins get 403.
        extensions: Extension factories, in order of preference.
        subprotocols: Subprotocols, in order of preference.
        select_subprotocol: Chooses among the client's subprotocols instead.
        compression: ``"deflate"`` (the default) accepts permessage-deflate
            (RFC 7692) with settings that favour memory (12-bit windows, memLevel
            5: about 49 KiB per connection) unless ``extensions`` configures it
            already; ``None`` turns compression off.
        process_request: Called with the connection and the request before the
            handshake; returning a `Response` (see `ServerConnection.respond`)
            answers with it instead of upgrading (health checks, auth failures).
        process_response: Called with the connection, request and response; may
            return another response.
        server_header: The ``Server`` header; ``None`` sends none.
        open_timeout: Bound on TLS and the opening handshake, per connection.
        ping_interval, ping_timeout, close_timeout: As for `connect`.
        max_size, max_queue, write_limit: As for `connect`.
        ssl: A server-side TLS context, to serve ``wss://``.
        logger: The server's logger; ``anyws.server`` by default.
        create_connection: A factory called like `ServerConnection`.
        backlog, reuse_port: Passed to `anyio.create_tcp_listener`.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None = None,
        port: int | None = None,
        *,
        origins: Sequence[str | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        compression: str | None = "deflate",
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        server_header: str | None = SERVER,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = 2**20,
        max_queue: int | None = 16,
        write_limit: int = 2**15,
        ssl: ssl_module.SSLContext | None = None,
        logger: LoggerLike | None = None,
        create_connection: Callable[..., ServerConnection] | None = None,
        backlog: int = 65536,
        reuse_port: bool = False,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.origins = origins
        if compression == "deflate":
            extensions = enable_server_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.extensions = extensions
        self.subprotocols = subprotocols
        self.select_subprotocol = select_subprotocol
        self.process_request = process_request
        self.process_response = process_response
        self.server_header = server_header
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.connection_options: dict[str, Any] = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
        }
        self.max_size = max_size
        self.ssl = ssl
        self.logger: LoggerLike = logger or logging.getLogger("anyws.server")
        self.create_connection = create_connection or ServerConnection
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.server = Server(self.logger)
        self.server.close_timeout = close_timeout
        self._task_group: anyio.abc.TaskGroup | None = None

    # Running -------------------------------------------------------------

    async def _listen(self) -> None:
        """Bind the listening sockets (once)."""
        if self.server.listeners:
            return
        listener = await anyio.create_tcp_listener(
            local_host=self.host,
            local_port=self.port or 0,
            backlog=self.backlog,
            reuse_port=self.reuse_port,
        )
        self.server.listeners = list(listener.listeners)
        for address in self.server.sockets:
            self.logger.info("server listening on %s", _format_address(address))

    async def __aenter__(self) -> Server:
        await self._listen()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        for listener in self.server.listeners:
            task_group.start_soon(self._accept, listener, task_group)
        return self.server

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        assert task_group is not None, "serve() exited without being entered"
        try:
            if exc is None or isinstance(exc, Exception):
                await self.server.close()
        finally:
            server = self.server
            server._accepting.cancel()
            # Cancelled or interrupted: no closing handshakes, but no open socket either.
            # Shielded: in a cancelled scope every await raises, and the task group
            # below must still be exited.
            with anyio.CancelScope(shield=True):
                for listener in server.listeners:
                    await anyio.aclose_forcefully(listener)
            for scope in list(server._handlers):
                scope.cancel()
            server._closed.set()
            await task_group.__aexit__(None, None, None)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[Server] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the server until cancelled: ``server = await tg.start(serve(...).serve)``.

        The sockets are bound before ``start`` returns, so connecting right away
        works. Cancellation closes the listeners and cancels the handlers.
        """
        await self._listen()
        # started() comes before the task group opens: trio can't move a task that
        # has a nursery open into the caller's task group.
        task_status.started(self.server)
        async with self as server:
            await server.serve_forever()

    async def _accept(
        self, listener: anyio.abc.Listener[Any], task_group: anyio.abc.TaskGroup
    ) -> None:
        accept = listener.accept  # type: ignore[attr-defined]
        with self.server._accepting:
            while True:
                try:
                    stream = await accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # The server is closing.
                except OSError as exc:
                    if exc.errno in _ACCEPT_CAPACITY_ERRORS:
                        # Out of file descriptors or memory: wait for some to free up,
                        # as trio's serve_listeners does, rather than spin or stop.
                        self.logger.error("accept failed, retrying in 100 ms: %s", exc)
                        await anyio.sleep(0.1)
                        continue
                    self.logger.error("accept failed; no longer accepting", exc_info=True)
                    return
                task_group.start_soon(self._handle, stream)

    # One connection ------------------------------------------------------

    async def _handle(self, stream: anyio.abc.AnyByteStream) -> None:
        server = self.server
        scope = anyio.CancelScope()
        server._handlers.add(scope)
        if server._handlers_done.is_set():
            server._handlers_done = anyio.Event()
        try:
            with scope:
                await self._serve_connection(stream)
        finally:
            server._handlers.discard(scope)
            if not server._handlers:
                server._handlers_done.set()

    async def _serve_connection(self, stream: anyio.abc.AnyByteStream) -> None:
        connection: ServerConnection | None = None
        try:
            with anyio.move_on_after(
                math.inf if self.open_timeout is None else self.open_timeout
            ) as opening:
                if self.ssl is not None:
                    try:
                        stream = await TLSStream.wrap(
                            stream,
                            server_side=True,
                            ssl_context=self.ssl,
                            standard_compatible=False,
                        )
                    except _TLS_HANDSHAKE_ERRORS as exc:
                        # A client that gives up (a certificate it rejects, a port
                        # scanner) is no reason to stop serving the others.
                        self.logger.debug("TLS handshake failed: %r", exc)
                        return
                connection = await self._handshake(stream)
            if opening.cancelled_caught:
                self.logger.debug("opening handshake timed out")
                return
            if connection is None:
                return
            await self._run(connection)
        finally:
            await anyio.aclose_forcefully(stream)

    async def _run(self, connection: ServerConnection) -> None:
        """Run the handler on an open connection, with its background tasks beside it."""
        server = self.server
        server.connections.add(connection)
        try:
            async with _Running(connection):
                try:
                    await self.handler(connection)
                except ConnectionClosed as exc:
                    # Not the handler's fault: the peer left. Once, without traceback.
                    connection.logger.debug("connection closed: %s", exc)
                except Exception:
                    connection.logger.error("connection handler failed", exc_info=True)
                    await connection.close(1011)
        finally:
            server.connections.discard(connection)

    async def _handshake(self, stream: anyio.abc.AnyByteStream) -> ServerConnection | None:
        """Run the opening handshake; return the connection if it was accepted."""
        protocol = ServerProtocol(
            origins=self.origins,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            select_subprotocol=self.select_subprotocol,
            max_size=self.max_size,
            logger=self.logger,
        )
        connection = self.create_connection(
            stream, protocol, server=self.server, **self.connection_options
        )
        request = await connection._receive_handshake_message()
        if not isinstance(request, Request):
            await connection._write_direct()  # the automatic 400, if any
            self.logger.debug(
                "opening handshake failed: %s",
                protocol.handshake_exc or connection._transport_exc or "connection closed",
            )
            return None
        connection.request = request
        response: Response | None = None
        try:
            if self.process_request is not None:
                response = await _maybe_await(self.process_request(connection, request))
            if response is None:
                response = protocol.accept(request, server_header=self.server_header)
            if self.process_response is not None:
                changed = await _maybe_await(self.process_response(connection, request, response))
                if changed is not None:
                    response = changed
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            response = protocol.reject(
                http.HTTPStatus.INTERNAL_SERVER_ERROR,
                "Failed to open a WebSocket connection.\nSee server log for more information.\n",
            )
        connection.response = response
        protocol.send_response(response)
        await connection._write_direct()
        if protocol.state is not protocol.state.OPEN:
            if response.status_code == 101 or protocol.handshake_exc is not None:
                self.logger.debug("opening handshake failed: %s", protocol.handshake_exc)
            return None
        return connection


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
