"""The client: `connect` and `ClientConnection`."""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, NoReturn

import anyio
import anyio.abc

from ._connection import (
    TRANSPORT_ERRORS,
    Connection,
    Running,
    receive_handshake,
    transport_error,
    write_handshake,
)
from ._options import ConnectionOptions
from ._proxy import open_tcp_stream, parse_proxy
from ._redirect import format_uri, redirect_target, same_origin, strip_credentials
from ._sockets import stream_from_socket
from ._tls import start_tls
from .exceptions import InvalidMessage, InvalidStatus, SecurityError
from .sansio import ClientProtocol
from .sansio._handshake import USER_AGENT
from .sansio._headers import Headers, HeadersLike
from .sansio._protocol import LoggerLike
from .sansio._uri import WebSocketURI, parse_uri
from .sansio.extensions import ClientExtensionFactory, enable_client_permessage_deflate


__all__ = ["ClientConnection", "connect", "open_connection"]


class ClientConnection(Connection):
    """A client connection, as given by `connect`.

    Subclass it and pass a factory to `connect` as ``create_connection`` to add
    behaviour; ``functools.partial(MyConnection, extra=42)`` passes extra arguments.
    """

    __slots__ = ()

    protocol: ClientProtocol

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected, if any."""
        return self.protocol.subprotocol


class connect:  # a context manager used like a function, as in websockets
    """Open a WebSocket connection: ``async with connect(uri) as websocket: ...``.

    The connection's background tasks (reader, writer, keepalive) run in a task
    group that this context owns; leaving the block performs the closing
    handshake (code 1000, or 1011 when the block raised; bounded by
    ``close_timeout``) and ends them. Enter and exit it in the same task.

    Redirects (301, 302, 303, 307 and 308 with a ``Location``) are followed, up
    to ``max_redirects``, each on a new TCP connection; a relative ``Location``
    is resolved against the request's URI. A redirect from ``wss://`` to
    ``ws://`` raises `SecurityError`. When the origin (scheme, host and port)
    changes, credentials stay behind: the URI's user info, and
    ``Authorization``, ``Cookie``, ``Proxy-Authorization`` and ``Host`` in
    ``additional_headers``; ``server_hostname`` applies to the first origin
    only. ``connection.protocol.uri`` is the URI finally connected to.

    To reconnect automatically, use `reconnect`: ``async for websocket in
    connect(uri)``, websockets' spelling, raises `TypeError`.

    Args:
        uri: A ``ws://`` or ``wss://`` URI; ``ws://user:pass@host/`` sends HTTP
            Basic credentials.
        origin: The ``Origin`` header, if any.
        extensions: Extension factories to offer, in order of preference.
        subprotocols: Subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (the default) offers permessage-deflate
            (RFC 7692) unless ``extensions`` configures it already; ``None``
            turns compression off.
        additional_headers: Extra headers for the handshake request.
        user_agent_header: The ``User-Agent`` header; ``None`` sends none.
        open_timeout: Bound on TCP, the proxy, TLS and the opening handshake, in
            seconds, redirects included; ``None`` for none.
        ping_interval: Seconds between keepalive pings; ``None`` disables them.
        ping_timeout: Seconds to wait for a keepalive pong before failing the
            connection with 1011; ``None`` waits forever.
        close_timeout: Bound on the closing handshake, in seconds; then the TCP
            connection is aborted.
        max_size: Largest incoming message, in bytes; ``None`` for no limit.
            Larger messages fail the connection with 1009.
        max_queue: Most incoming messages waiting for `~Connection.recv`; then
            reading stops, so TCP pushes back on the server. ``None``: no limit.
        write_limit: `~Connection.send` waits while more bytes than this wait to
            be written.
        ssl: The TLS context for ``wss://``; by default, one that verifies
            certificates with the system's CAs.
        server_hostname: The host name to check the certificate against; by
            default, the URI's host.
        logger: Logger for this connection; ``anyws.client`` by default.
        create_connection: A factory called like `ClientConnection`.
        stream: An already connected anyio byte stream to run the connection on,
            instead of opening a TCP connection (a Unix socket, a proxy tunnel,
            `anyws.testing` streams...); no proxy is used then, and redirects
            can't be followed on it.
        proxy: The proxy to connect through: by default (``True``) the one that
            the ``https_proxy``, ``http_proxy``, ``all_proxy`` and ``no_proxy``
            environment variables configure for ``uri``; a URL
            (``http://user:pass@host:port``, ``https://``, ``socks5h://``,
            ``socks5://``, ``socks4a://``, ``socks4://``) to use that one; ``None``
            to connect directly. SOCKS needs ``anyws[socks]``. See
            :doc:`/howto/proxies`.
        proxy_ssl: The TLS context for an ``https://`` proxy; by default, one that
            verifies certificates with the system's CAs.
        proxy_server_hostname: The host name to check an ``https://`` proxy's
            certificate against; by default, the proxy's host.
        max_redirects: How many redirects to follow; ``0`` follows none, so a
            redirect raises `InvalidStatus`.
        sock: A connected TCP (or Unix) socket to run the connection on, instead
            of opening one; TLS runs over it for ``wss://``. The connection owns
            it from then on. No proxy is used then, and redirects can't be
            followed on it.

    Raises:
        InvalidURI: ``uri`` isn't a valid WebSocket URI.
        InvalidProxy: ``proxy`` isn't a valid proxy URL.
        ImportError: A SOCKS proxy is to be used and python-socks isn't installed.
        OSError: The TCP connection (to the server or the proxy) failed;
            `ssl.SSLError` for TLS.
        ProxyError: The proxy didn't open the tunnel: `InvalidProxyStatus` when an
            HTTP proxy refused it, `InvalidProxyMessage` for a malformed answer.
        TimeoutError: ``open_timeout`` passed: "timed out during opening handshake".
        InvalidHandshake: The opening handshake failed; `InvalidStatus` when the
            server answered with a status other than 101, or with a redirect
            that can't be followed; `SecurityError` for a redirect from
            ``wss://`` to ``ws://`` or more than ``max_redirects`` of them;
            `InvalidURI` when a ``Location`` isn't a WebSocket URI.
        ValueError: Both ``stream`` and ``sock`` were given; ``sock`` isn't a
            connected stream socket (on entering).
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: str | None = "deflate",
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = 2**20,
        max_queue: int | None = 16,
        write_limit: int = 2**15,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        logger: LoggerLike | None = None,
        create_connection: Callable[..., ClientConnection] | None = None,
        stream: anyio.abc.AnyByteStream | None = None,
        proxy: str | Literal[True] | None = True,
        proxy_ssl: ssl_module.SSLContext | None = None,
        proxy_server_hostname: str | None = None,
        max_redirects: int = 10,
        sock: socket.socket | None = None,
    ) -> None:
        if stream is not None and sock is not None:
            raise ValueError("connect() can't take both stream and sock")
        self.uri = parse_uri(uri)
        if ssl is not None and not self.uri.secure:
            raise ValueError("connect() received an ssl argument for a ws:// URI")
        self.origin = origin
        if compression == "deflate":
            extensions = enable_client_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.extensions = extensions
        self.subprotocols = subprotocols
        # Headers once, so that every hop and every reconnection sends the same.
        self.additional_headers = (
            Headers(additional_headers) if additional_headers is not None else None
        )
        self.user_agent_header = user_agent_header
        self.open_timeout = open_timeout
        self.connection_options: dict[str, Any] = ConnectionOptions(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        ).as_kwargs()
        self.max_size = max_size
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.logger = logger
        self.create_connection = create_connection or ClientConnection
        self.stream = stream
        self.sock = sock
        if isinstance(proxy, str):
            parse_proxy(proxy)  # raise InvalidProxy now
        self.proxy = proxy
        self.proxy_ssl = proxy_ssl
        self.proxy_server_hostname = proxy_server_hostname
        if max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        self.max_redirects = max_redirects
        self._running: Running | None = None

    async def _open_stream(self, uri: WebSocketURI) -> anyio.abc.AnyByteStream:
        """Return the stream to the server of ``uri``: given, direct or proxied, with TLS."""
        if self.stream is not None:
            return self.stream
        stream: anyio.abc.AnyByteStream
        if self.sock is not None:
            stream = await stream_from_socket(self.sock)
            return await self._start_tls(stream, uri) if uri.secure else stream
        stream = await open_tcp_stream(
            uri,
            proxy=self.proxy,
            user_agent_header=self.user_agent_header,
            proxy_ssl=self.proxy_ssl,
            proxy_server_hostname=self.proxy_server_hostname,
        )
        if uri.secure:
            stream = await self._start_tls(stream, uri)
        return stream

    async def _start_tls(
        self, stream: anyio.abc.AnyByteStream, uri: WebSocketURI
    ) -> anyio.abc.AnyByteStream:
        """Run the TLS handshake for ``uri`` over ``stream``; close ``stream`` if it fails.

        ``server_hostname`` applies to the first origin only: a redirect elsewhere
        checks the certificate against its own host.
        """
        hostname = (self.server_hostname if same_origin(uri, self.uri) else None) or uri.host
        return await start_tls(stream, hostname=hostname, ssl_context=self.ssl)

    async def _open(self) -> ClientConnection:
        """Open the connection, following redirects; its tasks aren't started."""
        uri = self.uri
        additional_headers = self.additional_headers
        redirects = 0
        while True:
            try:
                return await self._handshake(uri, additional_headers)
            except InvalidStatus as exc:
                if self.stream is not None or self.sock is not None or self.max_redirects == 0:
                    raise
                target = redirect_target(uri, exc)
                if target is None:
                    raise
                redirects += 1
                if redirects > self.max_redirects:
                    raise SecurityError(f"more than {self.max_redirects} redirects") from exc
                if not same_origin(uri, target):
                    additional_headers = strip_credentials(additional_headers)
                logger = self.logger or logging.getLogger("anyws.client")
                logger.debug(
                    "= HTTP %d: redirected to %s",
                    exc.response.status_code,
                    format_uri(target),
                )
                uri = target

    async def _handshake(
        self, uri: WebSocketURI, additional_headers: Headers | None
    ) -> ClientConnection:
        """Open a stream to ``uri`` and run the opening handshake on it.

        The stream is closed when the handshake fails.
        """
        stream = await self._open_stream(uri)
        try:
            protocol = ClientProtocol(
                uri,
                origin=self.origin,
                extensions=self.extensions,
                subprotocols=self.subprotocols,
                max_size=self.max_size,
                logger=self.logger,
            )
            connection = self.create_connection(stream, protocol, **self.connection_options)
            protocol.send_request(
                protocol.connect(
                    additional_headers=additional_headers,
                    user_agent_header=self.user_agent_header,
                )
            )
            connection.request = protocol.request
            await write_handshake(connection)
            await receive_handshake(connection)
            connection.response = protocol.response
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            if protocol.response is None:  # the stream ended or broke
                cause = transport_error(connection) or protocol.parser_exc
                raise InvalidMessage("did not receive a valid HTTP response") from cause
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        return connection

    async def _open_with_timeout(self) -> ClientConnection:
        """`_open` bounded by ``open_timeout``, transport errors as `OSError`."""
        try:
            with anyio.fail_after(self.open_timeout) as scope:
                return await self._open()
        except TimeoutError as exc:
            if scope.cancel_called:  # open_timeout, not a timeout inside (an OSError)
                raise TimeoutError("timed out during opening handshake") from exc
            raise
        except TRANSPORT_ERRORS as exc:
            if isinstance(exc, OSError):
                raise
            raise OSError(str(exc) or type(exc).__name__) from exc

    async def __aenter__(self) -> ClientConnection:
        connection = await self._open_with_timeout()
        self._running = Running(connection)
        await self._running.__aenter__()
        return connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        running = self._running
        assert running is not None, "connect() exited without being entered"
        self._running = None
        await running.__aexit__(exc_type, exc, traceback)

    def __aiter__(self) -> NoReturn:
        # websockets reconnects with ``async for websocket in connect(uri)``; that
        # would hold the connection's task group open across a yield, which trio
        # forbids. Point websockets users to the structured spelling.
        raise TypeError(
            "connect() can't be iterated to reconnect; use anyws.reconnect(): "
            "async for attempt in anyws.reconnect(uri): "
            "async with attempt as websocket: ..."
        )


async def open_connection(config: connect, *, bounded: bool = True) -> ClientConnection:
    """Open ``config``'s connection, following redirects; its tasks aren't started.

    For `reconnect` and `anyws.testing`. When ``bounded``, as `connect` does:
    within ``open_timeout``, transport errors raised as `OSError`.
    """
    if bounded:
        return await config._open_with_timeout()
    return await config._open()
