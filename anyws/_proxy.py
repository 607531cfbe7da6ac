"""Client connections through HTTP CONNECT and SOCKS proxies.

Strategy: `open_tcp_stream` returns a byte stream to the WebSocket server, opened
directly or through a proxy; the caller then adds TLS for ``wss://`` on top, so TLS
to the server runs inside the tunnel (TLS in TLS through an ``https://`` proxy).

- Which proxy: `get_proxy` reads the standard environment variables through
  `urllib.request.getproxies` and `urllib.request.proxy_bypass` (``no_proxy``), as
  websockets does, in the order curl and requests use: ``wss_proxy`` (or
  ``ws_proxy``) first, as in websockets, then ``https_proxy`` for ``wss://`` (or
  ``http_proxy`` for ``ws://``), then ``all_proxy``.
- HTTP CONNECT is a request line over the handshake's `Headers` and a response read
  by the handshake's parser, `parse_response` with ``proxy=True``: its head only.
  Bytes the proxy sent after that head already belong to the tunnel; they are
  handed back first by `_PrefixedStream`, never lost.
- SOCKS4, 4a, 5 and 5h use python-socks (``anyws[socks]``), imported only when a
  SOCKS proxy is used. With ``socks5h`` and ``socks4a`` the proxy resolves the
  server's host name.

Errors keep websockets' names: `InvalidProxy` for a proxy URL we can't use,
`InvalidProxyStatus` when an HTTP proxy refuses the tunnel, `InvalidProxyMessage`
when its answer is malformed or missing, `ProxyError` when a SOCKS proxy fails (the
python-socks exception is the ``__cause__``), and `OSError` when the proxy can't be
reached at all.
"""

from __future__ import annotations

import dataclasses
import math
import ssl as ssl_module
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel

from ._asyncio import connect_tcp
from ._idna import idna_encode
from ._tcp import connect_error
from ._tls import start_tls
from .exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
)
from .sansio import Headers, Response, WebSocketURI
from .sansio._surface import build_authorization_basic, build_host, parse_response


__all__ = [
    "Proxy",
    "build_connect_request",
    "connect_http_proxy",
    "connect_socks_proxy",
    "get_proxy",
    "open_tcp_stream",
    "parse_proxy",
]

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    # RFC 1928, section 3: "The SOCKS service is conventionally located on TCP port 1080."
    "socks5h": 1080,
    "socks5": 1080,
    "socks4a": 1080,
    "socks4": 1080,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Proxy:
    """A parsed proxy URL. Not for subclassing.

    Attributes:
        scheme: ``"http"``, ``"https"``, ``"socks5h"``, ``"socks5"``, ``"socks4a"``
            or ``"socks4"``.
        host: The host name (lowercased, IDNA-encoded) or IP address, without brackets.
        port: The port; by default 80 for ``http``, 443 for ``https``, 1080 for SOCKS.
        username: The user name from the URL's userinfo, percent-decoded.
        password: The password from the URL's userinfo, percent-decoded.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_proxy(proxy: str) -> Proxy:
    """Parse and validate a proxy URL such as ``http://user:pass@proxy:3128``.

    Raises:
        InvalidProxy: ``proxy`` isn't a valid proxy URL, or its scheme isn't supported.
    """
    try:
        parsed = urllib.parse.urlsplit(proxy)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise InvalidProxy(proxy, str(exc)) from None
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidProxy(proxy, "invalid port")
    scheme = parsed.scheme
    if scheme not in _DEFAULT_PORTS:
        raise InvalidProxy(proxy, f"scheme {scheme} isn't supported")
    host = parsed.hostname
    if not host:
        raise InvalidProxy(proxy, "hostname isn't provided")
    if parsed.path not in ("", "/"):
        raise InvalidProxy(proxy, "path is meaningless")
    if parsed.query:
        raise InvalidProxy(proxy, "query is meaningless")
    if parsed.fragment:
        raise InvalidProxy(proxy, "fragment is meaningless")
    if not host.isascii():
        try:
            host = idna_encode(host)  # IDNA 2008, as for the server's host
        except UnicodeError:
            raise InvalidProxy(proxy, "invalid internationalized hostname") from None
    username, password = parsed.username, parsed.password
    if username is not None:
        # urlsplit accepts a user name without a password; Basic credentials need both.
        if password is None:
            raise InvalidProxy(proxy, "username provided without password")
        try:
            username = urllib.parse.unquote(username, errors="strict")
            password = urllib.parse.unquote(password, errors="strict")
        except UnicodeError:
            raise InvalidProxy(proxy, "credentials aren't valid UTF-8") from None
    return Proxy(scheme, host, port or _DEFAULT_PORTS[scheme], username, password)


def get_proxy(uri: WebSocketURI) -> str | None:
    """Return the proxy URL that the environment configures for ``uri``, if any.

    Reads ``wss_proxy`` (for ``wss://``) or ``ws_proxy`` (for ``ws://``), then
    ``https_proxy`` or ``http_proxy``, then ``all_proxy``; lower-case names win over
    upper-case ones. ``no_proxy`` lists hosts to reach directly: ``*`` for every
    host, ``example.com`` for that domain and its subdomains, ``host:port`` for one
    port. On macOS and Windows, without such variables, the system's settings apply
    (`urllib.request.getproxies`).
    """
    proxies = urllib.request.getproxies()
    if not proxies:  # the common case; proxy_bypass would read the environment again
        return None
    # proxy_bypass splits the port off at the last colon: an IPv6 address needs no
    # brackets here, and a no_proxy entry matches it written without brackets.
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    for name in ("wss", "https", "all") if uri.secure else ("ws", "http", "all"):
        proxy = proxies.get(name)
        if proxy:
            return proxy
    # The system settings of macOS and Windows name a SOCKS proxy "socks", with a
    # scheme that may be http:// (websockets reads it the same way).
    proxy = proxies.get("socks")
    if proxy:
        return "socks5h://" + proxy.removeprefix("http://")
    return None


async def open_tcp_stream(
    uri: WebSocketURI,
    *,
    proxy: str | Literal[True] | None,
    user_agent_header: str | None,
    proxy_ssl: ssl_module.SSLContext | None = None,
    proxy_server_hostname: str | None = None,
) -> anyio.abc.ByteStream:
    """Open a byte stream to the server of ``uri``, directly or through a proxy.

    Args:
        uri: The WebSocket URI; TLS for ``wss://`` is left to the caller.
        proxy: A proxy URL; ``True`` for the one the environment configures
            (`get_proxy`); ``None`` to connect directly.
        user_agent_header: The ``User-Agent`` header of an HTTP ``CONNECT``.
        proxy_ssl: The TLS context for an ``https://`` proxy.
        proxy_server_hostname: The host name to check an ``https://`` proxy's
            certificate against; by default, the proxy's host.

    Raises:
        InvalidProxy: The proxy URL isn't valid.
        ValueError: ``proxy_ssl`` is given for a proxy other than ``https://``.
        ImportError: A SOCKS proxy is configured and python-socks isn't installed.
        OSError: The server (or the proxy) can't be reached.
        ProxyError: The proxy failed to open the tunnel; `InvalidProxyStatus` and
            `InvalidProxyMessage` for an HTTP proxy.

    Cancellation closes whatever was opened.
    """
    if proxy is True:
        proxy = get_proxy(uri)
    if proxy is None:
        # On asyncio, anyws' own transport (see _asyncio.py).
        return await connect_tcp(uri.host, uri.port)
    parsed = parse_proxy(proxy)
    if parsed.scheme != "https" and proxy_ssl is not None:
        article = "an" if parsed.scheme == "http" else "a"
        raise ValueError(
            f"proxy_ssl argument is incompatible with {article} {parsed.scheme}:// proxy"
        )
    if parsed.scheme.startswith("socks"):
        return await connect_socks_proxy(parsed, uri)
    return await connect_http_proxy(
        parsed,
        uri,
        user_agent_header=user_agent_header,
        ssl=proxy_ssl,
        server_hostname=proxy_server_hostname,
    )


# HTTP CONNECT ------------------------------------------------------------------------


def build_connect_request(
    proxy: Proxy, uri: WebSocketURI, *, user_agent_header: str | None
) -> bytes:
    """Return the ``CONNECT`` request that opens a tunnel to the server of ``uri``.

    RFC 7231, section 4.3.6: the request target is the authority, port included.
    The ``Host`` header is built as in the opening handshake; credentials in the
    proxy URL become ``Proxy-Authorization: Basic`` (RFC 7235, section 4.4).
    """
    # build_host leaves out the default port; CONNECT always names it.
    default_port = 443 if uri.secure else 80
    authority = f"{build_host(uri.host, default_port, uri.secure)}:{uri.port}"
    headers = Headers()
    headers["Host"] = build_host(uri.host, uri.port, uri.secure)
    if user_agent_header is not None:
        headers["User-Agent"] = user_agent_header
    if proxy.username is not None:
        assert proxy.password is not None  # enforced by parse_proxy
        headers["Proxy-Authorization"] = build_authorization_basic(proxy.username, proxy.password)
    # Request only serialises GET; the header block is the handshake's own.
    return f"CONNECT {authority} HTTP/1.1\r\n".encode("ascii") + headers.serialize()


async def connect_http_proxy(
    proxy: Proxy,
    uri: WebSocketURI,
    *,
    user_agent_header: str | None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
) -> anyio.abc.ByteStream:
    """Open a tunnel to the server of ``uri`` through an HTTP proxy, with ``CONNECT``.

    For an ``https://`` proxy, TLS to the proxy comes first, with ``ssl`` (by
    default, a context that verifies certificates with the system's CAs) and
    ``server_hostname`` (by default, the proxy's host).

    Raises:
        OSError: The proxy can't be reached; `ssl.SSLError` for TLS to the proxy.
        InvalidProxyStatus: The proxy answered with a status other than 2xx.
        InvalidProxyMessage: The proxy's answer is malformed, or the connection
            broke or closed before its end.

    Cancellation closes the connection to the proxy.
    """
    stream: anyio.abc.ByteStream = await connect_tcp(proxy.host, proxy.port)
    if proxy.scheme == "https":
        stream = await start_tls(stream, hostname=server_hostname or proxy.host, ssl_context=ssl)
    try:
        request = build_connect_request(proxy, uri, user_agent_header=user_agent_header)
        try:
            await stream.send(request)
        except (anyio.BrokenResourceError, OSError) as exc:
            raise InvalidProxyMessage("did not receive a valid HTTP response from proxy") from exc
        response, rest = await _receive_connect_response(stream)
        if not 200 <= response.status_code < 300:
            raise InvalidProxyStatus(response)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    if rest:
        return _PrefixedStream(stream, rest)
    return stream


async def _receive_connect_response(stream: anyio.abc.ByteStream) -> tuple[Response, bytes]:
    """Read the proxy's response head; return it and the bytes received after it."""
    buffer = bytearray()
    start = 0
    eof = False
    while True:
        try:
            try:
                buffer += await stream.receive()
            except anyio.EndOfStream:
                eof = True
            parsed = parse_response(buffer, eof=eof, start=start, proxy=True)
        except (InvalidHandshake, EOFError, anyio.BrokenResourceError, OSError) as exc:
            raise InvalidProxyMessage("did not receive a valid HTTP response from proxy") from exc
        if parsed is not None:
            response, size = parsed
            return response, bytes(buffer[size:])
        start = len(buffer)


class _PrefixedStream(anyio.abc.ByteStream):
    """A byte stream that first gives back bytes already read from it."""

    def __init__(self, stream: anyio.abc.ByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            await anyio.lowlevel.checkpoint()
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Any]:
        return self._stream.extra_attributes


# SOCKS --------------------------------------------------------------------------------


async def connect_socks_proxy(proxy: Proxy, uri: WebSocketURI) -> anyio.abc.ByteStream:
    """Open a connection to the server of ``uri`` through a SOCKS proxy, with python-socks.

    Raises:
        ImportError: python-socks isn't installed (``pip install anyws[socks]``).
        OSError: The proxy can't be reached.
        ProxyError: The proxy refused the connection or failed; the python-socks
            exception is the ``__cause__``.

    Cancellation closes the connection to the proxy.
    """
    try:
        import python_socks
        from python_socks.async_.anyio import Proxy as SocksProxy
    except ImportError as exc:
        raise ImportError(
            "connecting through a SOCKS proxy requires python-socks: pip install 'anyws[socks]'"
        ) from exc

    socks_proxy = SocksProxy(
        python_socks.ProxyType.SOCKS4
        if proxy.scheme.startswith("socks4")
        else python_socks.ProxyType.SOCKS5,
        proxy.host,
        proxy.port,
        proxy.username,
        proxy.password,
        # socks5h and socks4a: the proxy resolves the host name.
        rdns=proxy.scheme in ("socks5h", "socks4a"),
    )
    try:
        # open_timeout bounds the whole connection; no second timeout here.
        return await socks_proxy.connect(uri.host, uri.port, timeout=math.inf)
    except python_socks.ProxyConnectionError as exc:
        # Reaching the proxy failed: raise what connect_tcp raises for a direct
        # connection, rather than python-socks' wrapper of anyio's wrapper.
        cause = exc.__cause__
        if not isinstance(cause, OSError):
            raise
        error = connect_error(cause)
    except (python_socks.ProxyError, anyio.BrokenResourceError) as exc:
        # The proxy refused (or broke) the connection; python-socks says why.
        raise ProxyError("failed to connect to SOCKS proxy") from exc
    # Raised here, not in the except block: the wrappers aren't its __context__.
    raise error
