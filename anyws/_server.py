"""The server: `serve`, `Server` and `ServerConnection`."""

from __future__ import annotations

import errno
import http
import inspect
import logging
import math
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ._asyncio import accept_function, close_forcefully, serve_natively
from ._connection import (
    TRANSPORT_ERRORS,
    Connection,
    Running,
    exit_task_group,
    receive_handshake,
    transport_error,
    write_handshake,
)
from ._options import ConnectionOptions
from ._sockets import listener_from_socket
from ._stats import ServerCounters, ServerStats
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, ProtocolError
from .sansio import Close, Request, Response, ServerProtocol
from .sansio._surface import SERVER, HeadersLike, LoggerLike, is_valid_close_code
from .sansio.extensions import ServerExtensionFactory, enable_server_permessage_deflate


__all__ = ["Server", "ServerConnection", "accept_handshake", "serve", "serve_connection"]

#: What a failed server-side TLS handshake raises: the transport errors, and EOF.
_TLS_HANDSHAKE_ERRORS: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, anyio.EndOfStream)

#: Why a handshake that completed during a shutdown got 503.
_SHUTTING_DOWN = InvalidHandshake("server is shutting down")

_ACCEPT_CAPACITY_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class ServerConnection(Connection):
    """A server connection, as passed to the handler of `serve`.

    Subclass it and pass a factory to `serve` as ``create_connection`` to add
    behaviour; ``functools.partial(MyConnection, extra=42)`` passes extra arguments.
    """

    __slots__ = ("server", "username")

    protocol: ServerProtocol

    def __init__(
        self,
        stream: anyio.abc.AnyByteStream,
        protocol: ServerProtocol,
        *,
        server: Server,
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
        #: The user authenticated by `basic_auth`; ``None`` until then.
        self.username: str | None = None

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol selected during the handshake, if any."""
        return self.protocol.subprotocol

    def respond(
        self, status: int | http.HTTPStatus, text: str, *, headers: HeadersLike | None = None
    ) -> Response:
        """Build an HTTP response with ``text`` as its body, to return from ``process_request``.

        The body is ``text`` in UTF-8, sent as ``text/plain; charset=utf-8`` with
        ``Connection: close`` and anyws' ``Server`` header. ``headers`` are
        added; a ``Content-Type``, ``Connection`` or ``Server`` among them
        replaces the one built here (``Content-Length`` is always the body's).

        Raises:
            ValueError: ``status`` isn't in 100-599, or a header is invalid.
        """
        return self.protocol.reject(status, text, headers=headers)


Handler: TypeAlias = Callable[[ServerConnection], Awaitable[None]]
SelectSubprotocol: TypeAlias = Callable[[ServerConnection, Sequence[str]], str | None]
ProcessRequest: TypeAlias = Callable[
    [ServerConnection, Request], Response | Awaitable[Response | None] | None
]
ProcessResponse: TypeAlias = Callable[
    [ServerConnection, Request, Response], Response | Awaitable[Response | None] | None
]


class Server:
    """A running WebSocket server, as given by `serve`.

    Attributes:
        connections: The open connections (after their handshake succeeded).
        logger: The server's logger.
        listeners: The anyio listeners, one per bound socket.
        close_timeout: The default ``grace`` of `aclose`.
    """

    def __init__(self, logger: LoggerLike) -> None:
        self.connections: set[ServerConnection] = set()
        self.logger = logger
        self.listeners: list[anyio.abc.Listener[Any]] = []
        self._addresses: list[Any] = []  # of the listeners, read while they're open
        self.close_timeout: float | None = 10
        self._handlers: set[anyio.CancelScope] = set()
        self._handlers_done = anyio.Event()
        self._handlers_done.set()
        self._accepting = anyio.CancelScope()
        #: The listen backlog, when `serve` bound the sockets itself: on asyncio,
        #: the event loop's own server then accepts (see _asyncio.serve_natively).
        self._native_backlog: int | None = None
        self._stop_native: list[Callable[[], None]] = []
        self._closing = False
        # (code, reason) when shutting down with close_connections: connections
        # that finish their handshake after the shutdown began close at once.
        self._close_frame: tuple[int, str] | None = None
        self._cancelling = False  # the handlers' scopes are (being) cancelled
        self._shutting_down = False  # a _shutdown() call is running or finished
        self._cancelled = 0
        self._closed = anyio.Event()
        # Set by _start: the task group of the accept loops and the connections,
        # and what opens and serves each connection.
        self._task_group: anyio.abc.TaskGroup | None = None
        self._open_connection: (
            Callable[[anyio.abc.AnyByteStream], Awaitable[ServerConnection | None]] | None
        ) = None
        self._handler: Handler | None = None
        self._counters = ServerCounters()

    def stats(self) -> ServerStats:
        """A snapshot of the server's counters since it started.

        Open connections, opening handshakes accepted, rejected (by HTTP status)
        and failed, messages and bytes received and sent, and close codes: see
        `ServerStats`. Cheap: it adds up the counts of the open connections.
        """
        return self._counters.snapshot(connection.protocol for connection in self.connections)

    @property
    def sockets(self) -> list[Any]:
        """The bound addresses of all listeners, in the order they were bound.

        ``(host, port)`` for TCP (``(host, port, flowinfo, scope_id)`` for an
        IPv6 address with a scope, as anyio gives it), and the path for a Unix
        socket (`bytes` for Linux's abstract namespace).
        """
        if len(self._addresses) != len(self.listeners):  # read once: still valid closed
            self._addresses = [
                listener.extra(anyio.abc.SocketAttribute.local_address)
                for listener in self.listeners
            ]
        return list(self._addresses)

    @property
    def port(self) -> int:
        """The TCP port of the first TCP listener, handy with ``port=0``.

        It stays readable after the server closed.

        Raises:
            RuntimeError: The server has no TCP listener (a Unix socket server).
        """
        for address in self.sockets:
            if isinstance(address, tuple):
                return int(address[1])
        raise RuntimeError("the server has no TCP listener")

    async def serve_forever(self) -> None:
        """Wait until the server is closed.

        Cancellation shuts the server down as `aclose` does, shielded from the
        cancellation and bounded by ``close_timeout``, then propagates.
        """
        try:
            await self._closed.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def close(
        self, close_connections: bool = True, code: int = 1001, reason: str = ""
    ) -> None:
        """Stop accepting connections and close the server, as in websockets.

        Like `aclose` with the default ``grace`` (``close_timeout``); with
        ``close_connections=False``, open connections get no close frame: their
        handlers still have ``close_timeout`` to return before they are cancelled.
        """
        await self._shutdown(close_connections, code, reason, None)

    async def aclose(self, code: int = 1001, reason: str = "", grace: float | None = None) -> int:
        """Shut the server down gracefully, within a deadline.

        Stops accepting connections (and closes the listening sockets), answers
        handshakes still in progress with 503, closes every open connection with
        ``code`` and ``reason``, and waits up to ``grace`` seconds for the
        connection handlers to return; then cancels those still running and waits
        for them to end. Idempotent: later calls wait for the first to finish.

        Call it from outside the handlers: a handler that awaits it waits for
        itself, and is cancelled when ``grace`` runs out.

        Args:
            code: The close code sent to open connections; 1001 (going away) by
                default, 1012 (service restart) is another common choice.
            reason: The close reason.
            grace: Seconds that closing handshakes and handlers get before the
                handlers are cancelled; ``None`` for the server's ``close_timeout``
                (itself ``None`` for no limit); `math.inf` for no limit.

        Returns:
            How many connections were cancelled: handlers (and opening handshakes)
            still running when ``grace`` ran out. Also logged, as a warning.

        Raises:
            ProtocolError: ``code`` may not be sent, or ``reason`` is too long.

        Cancellation stops the wait; the server stays closed to new connections,
        and leaving `serve` finishes the shutdown.
        """
        return await self._shutdown(True, code, reason, grace)

    async def _shutdown(
        self, close_connections: bool, code: int, reason: str, grace: float | None
    ) -> int:
        if close_connections:
            check_close_frame(code, reason)
        if self._shutting_down:
            await self._closed.wait()
            return self._cancelled
        if not self._closing:
            self.logger.info("server closing")
        self._shutting_down = True
        try:
            if close_connections:
                self._close_frame = (code, reason)
            await self._stop_listening()
            if grace is None:
                grace = self.close_timeout
            with anyio.move_on_after(math.inf if grace is None else grace):
                if close_connections:
                    async with anyio.create_task_group() as task_group:
                        for connection in list(self.connections):
                            task_group.start_soon(connection.close, code, reason)
                await self._handlers_done.wait()
            cancelled = self._cancel_handlers()
            if cancelled:
                self.logger.warning(
                    "cancelled %d connection%s still open after %s s",
                    cancelled,
                    "" if cancelled == 1 else "s",
                    "inf" if grace is None else f"{grace:g}",
                )
            await self._handlers_done.wait()
        except BaseException:
            # Interrupted (the caller was cancelled): the next call starts over.
            self._shutting_down = False
            raise
        self._cancelled = cancelled
        self._closed.set()
        self.logger.info("server closed")
        return cancelled

    async def _stop_listening(self) -> None:
        """Stop the accept loops and close the listening sockets (idempotent)."""
        self._closing = True
        self._accepting.cancel()
        for stop in self._stop_native:
            stop()
        # Shielded: a cancelled caller must still release the sockets.
        with anyio.CancelScope(shield=True):
            for listener in self.listeners:
                await anyio.aclose_forcefully(listener)

    def _cancel_handlers(self) -> int:
        """Cancel every connection task; return how many were running."""
        self._cancelling = True
        for scope in self._handlers:
            scope.cancel()
        return len(self._handlers)

    # The lifecycle: entering and leaving serve ------------------------------

    async def _start(
        self,
        open_connection: Callable[[anyio.abc.AnyByteStream], Awaitable[ServerConnection | None]],
        handler: Handler,
    ) -> None:
        """Accept on the listeners, in a task group of this server, until it closes.

        Each accepted stream is opened with ``open_connection`` (TLS, the opening
        handshake) and, if that gives a connection, served by ``handler``.
        """
        self._open_connection = open_connection
        self._handler = handler
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._accept_all)

    async def _finish(self, exc: BaseException | None) -> None:
        """Shut down (gracefully, unless interrupted) and end the task group."""
        task_group = self._task_group
        assert task_group is not None, "serve() exited without being entered"
        try:
            if exc is None or isinstance(exc, Exception):
                await self.close()
            elif isinstance(exc, anyio.get_cancelled_exc_class()):
                # The same graceful shutdown, bounded by close_timeout: the handlers
                # are shielded from the cancellation (see _handle) until it ends.
                with anyio.CancelScope(shield=True):
                    await self.close()
        finally:
            # Interrupted (KeyboardInterrupt, or the shutdown above was cancelled):
            # no closing handshakes, but no open socket nor running handler either.
            await self._stop_listening()
            self._cancel_handlers()
            self._closed.set()
            await exit_task_group(task_group)

    async def _accept_all(self) -> None:
        """Accept on every listener, until the server closes: one accept loop each."""
        # One task and one scope around all loops: a cancel scope can't be
        # entered by several tasks.
        with self._accepting:
            async with anyio.create_task_group() as accepting:
                for listener in self.listeners:
                    accepting.start_soon(self._accept, listener)

    async def _accept(self, listener: anyio.abc.Listener[Any]) -> None:
        task_group = self._task_group
        assert task_group is not None
        # On asyncio, TCP connections run on anyws' own transport (see _asyncio.py),
        # accepted by the event loop's own server when the backlog is known.
        native = None
        if self._native_backlog is not None:
            try:
                native = await serve_natively(listener, self._native_backlog)
            except OSError:
                self.logger.error("accept failed; no longer accepting", exc_info=True)
                return
        if native is not None:
            self._stop_native.append(native.close)
            accept = native.accept
        else:
            accept = accept_function(listener) or listener.accept  # type: ignore[attr-defined]
        try:
            await self._accept_loop(accept, task_group)
        finally:
            if native is not None:
                native.close()

    async def _accept_loop(
        self,
        accept: Callable[[], Awaitable[anyio.abc.AnyByteStream]],
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        failing = False
        while True:
            try:
                stream = await accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                # anyio's trio listener wraps the OSError in a BrokenResourceError.
                cause = exc if isinstance(exc, OSError) else exc.__cause__
                if not isinstance(cause, OSError) or cause.errno not in _ACCEPT_CAPACITY_ERRORS:
                    if not isinstance(exc, OSError):
                        return  # The server is closing.
                    self.logger.error("accept failed; no longer accepting", exc_info=True)
                    return
                # Out of file descriptors or memory: wait for some to free up,
                # as trio's serve_listeners does, rather than spin or stop.
                # Logged once per outage, not once per retry.
                if not failing:
                    failing = True
                    self.logger.error("accept failed, retrying every 100 ms: %s", cause)
                await anyio.sleep(0.1)
                continue
            if failing:
                failing = False
                self.logger.warning("accepting connections again")
            task_group.start_soon(self._handle, stream)

    async def _handle(self, stream: anyio.abc.AnyByteStream) -> None:
        """One accepted connection: open it, serve it, close it."""
        # Shielded: a cancellation of the code around serve() doesn't reach the
        # handlers; the shutdown that follows closes them gracefully, then cancels
        # this scope if they outlive the grace period.
        scope = anyio.CancelScope(shield=True)
        if self._cancelling:
            scope.cancel()  # accepted as the server shut down: not served
        self._handlers.add(scope)
        if self._handlers_done.is_set():
            self._handlers_done = anyio.Event()
        try:
            with scope:
                assert self._open_connection is not None
                connection = await self._open_connection(stream)
                if connection is not None:
                    try:
                        await self._run(connection, self._handler)
                    finally:
                        await close_forcefully(connection.transport)
        except Exception:
            # A bug (here, in a transport, in create_connection...) must cost this
            # connection only, not crash the task group and the whole server.
            self.logger.error("connection task failed", exc_info=True)
        finally:
            self._handlers.discard(scope)
            if not self._handlers:
                self._handlers_done.set()

    async def _run(self, connection: ServerConnection, handler: Handler | None) -> None:
        """Run ``handler`` on an open connection, with its background tasks beside it."""
        assert handler is not None
        self.connections.add(connection)
        try:
            async with Running(connection):
                if self._close_frame is not None:
                    # Opened as the server shut down, after it closed the others.
                    await connection.close(*self._close_frame)
                    return
                try:
                    await handler(connection)
                except ConnectionClosed as exc:
                    # Not the handler's fault: the peer left. Once, without traceback.
                    connection.logger.debug("connection closed: %s", exc)
                except Exception:
                    connection.logger.error("connection handler failed", exc_info=True)
                    await connection.close(1011)
        except Exception:
            # A task of the connection's (start_soon) failed: the connection was
            # closed with 1011 and the handler cancelled; log it as the handler's.
            connection.logger.error("connection handler failed", exc_info=True)
        finally:
            self.connections.discard(connection)
            self._counters.connection_ended(connection.protocol)


class serve:  # a context manager used like a function, as in websockets
    """Run a WebSocket server: ``async with serve(handler, host, port) as server: ...``.

    Each connection runs ``handler(connection)`` in a task of a task group that
    this context owns, with the connection's own background tasks beside it.
    When the handler returns, the connection closes with 1000; when it raises, with
    1011, and the error is logged with its traceback. Leaving the block (normally,
    with an exception, or cancelled) shuts the server down as `Server.aclose`
    does: connections close with 1001 and handlers get ``close_timeout`` to return
    before they are cancelled. Handlers are shielded from a cancellation of the
    code around ``serve`` until then, so that they can finish cleanly.

    Args:
        handler: The coroutine function serving one connection.
        host: The interface to listen on (a name or an address), or a list of
            them, all bound on the same port; ``None`` (the default) for all
            interfaces, IPv4 and IPv6.
        port: The port; ``0`` picks a free one (see `Server.port`).
        origins: Acceptable ``Origin`` values (``None`` in the list allows
            requests without one); other origins get 403.
        extensions: Extension factories, in order of preference.
        subprotocols: Subprotocols, in order of preference. As in websockets, a
            server that names some requires one: a client that offers none of
            them is rejected with 400 ("missing subprotocol", or "invalid
            subprotocol; expected one of ...").
        select_subprotocol: Chooses among the client's subprotocols instead:
            called with the connection and the offers (as in websockets),
            returns one of them, or ``None`` to go on without a subprotocol;
            raising `NegotiationError` rejects the client with 400.
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
        backlog: The listen backlog, per listening socket.
        reuse_port: Set ``SO_REUSEPORT``, so that several servers (processes)
            can listen on the same port; on Linux, the kernel spreads connections
            among them. Not available on Windows.
        sock: A bound TCP socket to listen on instead of binding one (inherited
            from a parent process that forks workers, from systemd socket
            activation...); it listens with ``backlog`` unless it listens
            already. The server owns it from then on and closes it when it
            closes. Not with ``host``, ``port`` or ``reuse_port``.

    Raises:
        OSError: A listening socket couldn't be bound (on entering).
        ValueError: ``host`` is an empty list, ``compression`` is unknown, ``sock``
            comes with ``host``, ``port`` or ``reuse_port``, or ``sock`` isn't a
            bound stream socket (on entering).
    """

    def __init__(
        self,
        handler: Handler,
        host: str | Sequence[str] | None = None,
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
        sock: socket.socket | None = None,
    ) -> None:
        if sock is not None and (host is not None or port is not None or reuse_port):
            raise ValueError("serve() can't take host, port or reuse_port with sock")
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
        self.connection_options: dict[str, Any] = ConnectionOptions(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        ).as_kwargs()
        self.max_size = max_size
        self.ssl = ssl
        self.logger: LoggerLike = logger or logging.getLogger("anyws.server")
        self.create_connection = create_connection or ServerConnection
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.sock = sock
        self.server = Server(self.logger)
        self.server.close_timeout = close_timeout

    # Running -------------------------------------------------------------

    async def _create_listeners(self) -> list[anyio.abc.Listener[Any]]:
        """Bind the listening sockets; `unix_serve` overrides this.

        Each host of a list is bound in turn, on the same port: with ``port=0``,
        the port the first host got (on a port collision, the whole list is tried
        again on a fresh port, up to 10 times, as anyio does for ``host=None``).
        A ``sock`` given is listened on instead.
        """
        if self.sock is not None:
            # Maybe listening already, with a backlog of its own: not natively served.
            return [await listener_from_socket(self.sock, self.backlog)]
        # Not served natively (`serve_natively`) for now: the event loop's own
        # server handles running out of file descriptors by itself (asyncio logs
        # a traceback a second; with uvloop, libuv logs nothing and the waiting
        # client went unanswered in tests/test_accept_abuse.py), not as anyws'
        # accept loop does (one line per outage, the client served after).
        hosts: list[str | None]
        if self.host is None or isinstance(self.host, str):
            hosts = [self.host]
        else:
            hosts = list(self.host)
            if not hosts:
                raise ValueError("serve() received an empty list of hosts")
        for attempt in range(10):
            port = self.port or 0
            listeners: list[anyio.abc.Listener[Any]] = []
            try:
                for host in hosts:
                    multi = await anyio.create_tcp_listener(
                        local_host=host,
                        local_port=port,
                        backlog=self.backlog,
                        reuse_port=self.reuse_port,
                    )
                    listeners.extend(multi.listeners)
                    port = multi.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
            except BaseException as exc:
                for listener in listeners:
                    await anyio.aclose_forcefully(listener)
                if (
                    isinstance(exc, OSError)
                    and exc.errno == errno.EADDRINUSE
                    and not self.port
                    and listeners  # the port the first host got is taken on another
                    and attempt < 9
                ):
                    continue
                raise
            return listeners
        raise AssertionError("unreachable")  # pragma: no cover

    async def _listen(self) -> None:
        """Bind the listening sockets (once)."""
        if self.server.listeners:
            return
        self.server.listeners = await self._create_listeners()
        for address in self.server.sockets:
            self.logger.info("server listening on %s", _format_address(address))

    async def __aenter__(self) -> Server:
        await self._listen()
        await self.server._start(self._open, self.handler)
        return self.server

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.server._finish(exc)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[Server] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the server until cancelled: ``server = await tg.start(serve(...).serve)``.

        The sockets are bound before ``start`` returns, so connecting right away
        works. Cancellation shuts the server down gracefully, as `Server.aclose`
        does (bounded by ``close_timeout``), then propagates; `Server.aclose` from
        another task ends it too, and lets you choose the code and the grace period.
        """
        await self._listen()
        # started() comes before the task group opens: trio can't move a task that
        # has a nursery open into the caller's task group.
        task_status.started(self.server)
        async with self as server:
            await server.serve_forever()

    # One connection ------------------------------------------------------

    async def _open(self, stream: anyio.abc.AnyByteStream) -> ServerConnection | None:
        """TLS and the opening handshake, bounded by ``open_timeout``.

        Returns the connection if it was accepted; otherwise logs why not, closes
        ``stream`` and returns ``None``.
        """
        peer = _format_peer(stream)
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
                        self.logger.debug("TLS handshake failed from %s: %s", peer, _describe(exc))
                        self.server._counters.handshake_failed()
                        return None
                connection = await self._handshake(stream, peer)
            if opening.cancelled_caught:
                self.logger.debug("opening handshake failed from %s: timed out", peer)
                self.server._counters.handshake_failed()
                connection = None
            return connection
        finally:
            if connection is None:
                await close_forcefully(stream)

    async def _handshake(
        self, stream: anyio.abc.AnyByteStream, peer: str | None = None
    ) -> ServerConnection | None:
        """Run the opening handshake; return the connection if it was accepted.

        Logs, once and without traceback, why a connection wasn't accepted: at INFO
        when it got an HTTP response (its status, the path and the peer), at DEBUG
        when the transport failed first. Only an exception in ``process_request``
        or ``process_response`` is an ERROR, with its traceback.
        """
        protocol = ServerProtocol(
            origins=self.origins,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            max_size=self.max_size,
            logger=self.logger,
        )
        connection = self.create_connection(
            stream, protocol, server=self.server, **self.connection_options
        )
        select = self.select_subprotocol
        if select is not None:
            protocol.select_subprotocol = lambda _, offered: select(connection, offered)
        if peer is None:
            peer = _format_peer(stream)
        counters = self.server._counters
        request = await receive_handshake(connection)
        if not isinstance(request, Request):
            if transport_error(connection) is None:  # else there's no one to write to
                await write_handshake(connection)  # the automatic 400, if any
            if transport_error(connection) is None and protocol.response is not None:
                counters.handshake_answered(protocol.response.status_code)
            else:
                counters.handshake_failed()
            if transport_error(connection) is not None:  # says more than the parser
                why = _describe(transport_error(connection))
                self.logger.debug("opening handshake failed from %s: %s", peer, why)
            elif protocol.response is not None:  # the automatic 400
                self.logger.info(
                    "connection rejected (%d %s) from %s: %s",
                    protocol.response.status_code,
                    protocol.response.reason_phrase,
                    peer,
                    _describe(protocol.handshake_exc),
                )
            else:
                why = _describe(protocol.handshake_exc)
                self.logger.debug("opening handshake failed from %s: %s", peer, why)
            return None
        connection.request = request
        response: Response | None = None
        failed = False
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
            failed = True
            response = protocol.reject(
                http.HTTPStatus.INTERNAL_SERVER_ERROR,
                "Failed to open a WebSocket connection.\nSee server log for more information.\n",
            )
        refusal = protocol.handshake_exc  # set by accept() for an invalid request
        if response.status_code == 101 and self.server._closing:
            # No await since the check: the shutdown can't miss this connection.
            response = protocol.reject(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "Server is shutting down.\n",
                server_header=self.server_header,
            )
            refusal = _SHUTTING_DOWN
        connection.response = response
        protocol.send_response(response)
        await write_handshake(connection)
        if transport_error(connection) is None:
            counters.handshake_answered(response.status_code)
        else:
            counters.handshake_failed()
        if protocol.state is protocol.state.OPEN:
            return connection
        if failed:
            pass  # logged above, with the traceback
        elif transport_error(connection) is not None:
            self.logger.debug(
                "opening handshake failed from %s: %s", peer, _describe(transport_error(connection))
            )
        elif refusal is not None:
            self.logger.info(
                "connection rejected (%d %s) for %s from %s: %s",
                response.status_code,
                response.reason_phrase,
                request.path,
                peer,
                _describe(refusal),
            )
        else:
            # process_request or process_response answered: a health check, a
            # redirect, an authentication failure...
            self.logger.info(
                "HTTP response sent (%d %s) for %s from %s",
                response.status_code,
                response.reason_phrase,
                request.path,
                peer,
            )
        return None


async def accept_handshake(
    config: serve, stream: anyio.abc.AnyByteStream
) -> ServerConnection | None:
    """Run ``config``'s opening handshake on ``stream``, without TLS nor timeout.

    For `anyws.testing.connection_pair`: returns the connection if it was accepted.
    """
    return await config._handshake(stream)


async def serve_connection(config: serve, connection: ServerConnection) -> None:
    """Run ``config``'s handler on ``connection`` as `serve` does (`anyws.testing`)."""
    await config.server._run(connection, config.handler)


def check_close_frame(code: int, reason: str) -> None:
    """Check that a shutdown may send ``code`` and ``reason``, before anything happens.

    Raises:
        ProtocolError: ``code`` may not be sent, or ``reason`` is too long.
    """
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid status code: {code}")
    if len(Close(code, reason).serialize()) > 125:
        raise ProtocolError("close reason too long")


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _format_peer(stream: anyio.abc.AnyByteStream) -> str:
    """The remote address of ``stream``, for logs."""
    address = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
    if address is None or address == "":  # an unnamed Unix socket, a memory stream
        return "unix socket" if address == "" else "unknown peer"
    return _format_address(address)


def _describe(exc: BaseException | None) -> str:
    """Why a handshake failed, in one line."""
    if exc is None or isinstance(exc, anyio.EndOfStream):
        return "connection closed"
    if isinstance(exc, EOFError):  # the HTTP parser says where the stream ended
        return str(exc) or "connection closed"
    cause = exc.__cause__
    if isinstance(exc, anyio.BrokenResourceError) and isinstance(cause, OSError):
        return _describe(cause)  # anyio wraps the OSError that says what happened
    text = str(exc) or type(exc).__name__
    if isinstance(exc, InvalidMessage) and cause is not None:
        text = f"{text}: {_describe(cause)}"
    return text


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
