"""`connect` through proxies, against real proxies on 127.0.0.1, on every backend.

- HTTP CONNECT: `http_proxy` below, a small anyio proxy that records the request
  heads it receives, can require credentials, refuse, answer whatever a test wants,
  and speak TLS (an ``https://`` proxy).
- SOCKS5: Debian's ``microsocks``, started once per session (with and without
  credentials). Without the binary these tests skip, saying why; under CI (the
  ``CI`` environment variable is set, as ``.ci/run`` does) they fail instead, so that
  a CI machine that lost microsocks can't turn them into silent skips, unless
  ``ANYWS_TESTS_NO_MICROSOCKS`` gives the reason (``.ci/run`` sets it when it can't
  install microsocks).
- The environment variables: `get_proxy` unit tests, and `connect` end to end.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSAttribute, TLSStream

from anyws import (
    InvalidHandshake,
    InvalidMessage,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
    ServerConnection,
    connect,
    serve,
)
from anyws._proxy import Proxy, get_proxy, open_tcp_stream, parse_proxy
from anyws.sansio._handshake import USER_AGENT
from anyws.sansio._http11 import parse_response
from anyws.sansio._uri import parse_uri
from tests.conftest import MS


#: Bound on each test body, in seconds: a hang fails the test instead of the run.
TIMEOUT = 10_000 * MS


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without proxy variables, whatever the machine's environment."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


# An HTTP CONNECT proxy ------------------------------------------------------------------


@dataclasses.dataclass
class HTTPProxy:
    """What `http_proxy` yields: where it listens and what it received."""

    port: int
    tls: bool
    #: The request heads received, in order, each up to its empty line included.
    requests: list[bytes] = dataclasses.field(default_factory=list)
    #: The first bytes each client sent into its tunnel.
    tunnelled: list[bytes] = dataclasses.field(default_factory=list)

    def url(self, userinfo: str = "", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{userinfo}{host}:{self.port}"


async def read_head(stream: anyio.abc.ByteStream) -> tuple[bytes, bytes]:
    """Read an HTTP head; return it and the bytes after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


async def relay(
    client: anyio.abc.ByteStream, upstream: anyio.abc.ByteStream, tunnelled: list[bytes]
) -> None:
    """Copy bytes both ways until either side closes; record the client's first chunk."""

    async def pump(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        try:
            async for chunk in source:
                if source is client and len(tunnelled) < count + 1:
                    tunnelled.append(chunk)
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        tg.cancel_scope.cancel()

    count = len(tunnelled)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, client, upstream)
        tg.start_soon(pump, upstream, client)


@asynccontextmanager
async def http_proxy(
    *,
    ssl_context: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
    answer: bytes | None = None,
    established: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
    coalesce: bool = False,
    silent: bool = False,
) -> AsyncIterator[HTTPProxy]:
    """Run an HTTP CONNECT proxy on 127.0.0.1.

    Args:
        ssl_context: Speak TLS to clients (an ``https://`` proxy).
        credentials: Answer 407 unless ``Proxy-Authorization`` carries these.
        answer: Answer every request with these bytes, then close.
        established: The answer to a CONNECT that opened a tunnel.
        coalesce: Wait for the server's first bytes and send them along with
            ``established``, in one write.
        silent: Read the request and never answer.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy = HTTPProxy(listener.extra(anyio.abc.SocketAttribute.local_port), ssl_context is not None)
    done = anyio.Event()

    async def handle(client: anyio.abc.SocketStream) -> None:
        stream: anyio.abc.ByteStream = client
        if ssl_context is not None:
            stream = await TLSStream.wrap(
                client, server_side=True, ssl_context=ssl_context, standard_compatible=False
            )
        head, rest = await read_head(stream)
        proxy.requests.append(head)
        if silent:
            await done.wait()
            return
        if answer is not None:
            await stream.send(answer)
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        assert method == "CONNECT"
        fields = [line.partition(": ") for line in lines[1:] if line]
        authorization = [value for name, _, value in fields if name == "Proxy-Authorization"]
        if credentials is not None:
            expected = base64.b64encode(":".join(credentials).encode()).decode()
            if authorization != [f"Basic {expected}"]:
                await stream.send(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\n'
                    b"Content-Length: 0\r\n\r\n"
                )
                return
        host, _, port = target.rpartition(":")
        async with await anyio.connect_tcp(host.strip("[]"), int(port)) as upstream:
            first = await upstream.receive() if coalesce else b""
            await stream.send(established + first)
            if rest:
                await upstream.send(rest)
            await relay(stream, upstream, proxy.tunnelled)

    async def run(client: anyio.abc.SocketStream) -> None:
        async with client:
            try:
                await handle(client)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass  # the client went away, or failed TLS

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, run)
        try:
            yield proxy
        finally:
            done.set()
            tg.cancel_scope.cancel()


@asynccontextmanager
async def socks4_proxy() -> AsyncIterator[tuple[int, list[tuple[str, int, bytes]]]]:
    """Run a SOCKS4 and 4a proxy on 127.0.0.1 (microsocks only speaks SOCKS5).

    Yields its port and the list of ``(host, port, user id)`` it was asked to reach:
    a host name for SOCKS4a, an IPv4 address for SOCKS4.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    requests: list[tuple[str, int, bytes]] = []

    async def read_until_nul(stream: BufferedByteReceiveStream) -> bytes:
        return await stream.receive_until(b"\0", 256)

    async def run(client: anyio.abc.SocketStream) -> None:
        async with client:
            try:
                reader = BufferedByteReceiveStream(client)
                # VN=4, CD=1 (CONNECT), DSTPORT, DSTIP, USERID NUL [, host NUL for 4a]
                version, command, port, address = struct.unpack(
                    "!BBH4s", await reader.receive_exactly(8)
                )
                assert (version, command) == (4, 1)
                user_id = await read_until_nul(reader)
                if address[:3] == b"\0\0\0" and address[3]:
                    host = (await read_until_nul(reader)).decode()
                else:
                    host = socket.inet_ntoa(address)
                requests.append((host, port, user_id))
                async with await anyio.connect_tcp(host, port) as upstream:
                    await client.send(struct.pack("!BBH4s", 0, 90, 0, b"\0" * 4))
                    await relay(client, upstream, [])
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, run)
        yield listener.extra(anyio.abc.SocketAttribute.local_port), requests
        tg.cancel_scope.cancel()


@asynccontextmanager
async def raw_server(greeting: bytes) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that sends ``greeting``, then echoes; yields its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def run(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await stream.send(greeting)
                async for chunk in stream:
                    await stream.send(chunk)
            except (anyio.BrokenResourceError, OSError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, run)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


def connect_request(target: str, *extra: str) -> bytes:
    """The CONNECT request head anyws sends: request line, Host, User-Agent, extras."""
    host = target.removesuffix(":80")
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# HTTP CONNECT: success ------------------------------------------------------------------


async def test_ws_through_http_proxy() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            http_proxy() as proxy,
            connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.url()) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            # The socket under the connection goes to the proxy.
            assert ws.transport.extra(anyio.abc.SocketAttribute.remote_port) == proxy.port
            assert proxy.requests == [connect_request(f"127.0.0.1:{server.port}")]
        assert ws.close_code == 1000
    assert proxy.tunnelled[0].startswith(b"GET / HTTP/1.1\r\n")


async def test_connect_request_names_the_default_port() -> None:
    # The request target always has the port; the Host header, as usual, doesn't
    # have the default one. (The proxy answers 403: no server is needed.)
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(answer=b"HTTP/1.1 403 Forbidden\r\n\r\n") as proxy:
            for uri in ["ws://example.com/", "wss://[::1]/", "wss://example.com:8443/"]:
                with pytest.raises(InvalidProxyStatus):
                    async with connect(uri, proxy=proxy.url(), user_agent_header=None):
                        pytest.fail("connected")
    assert proxy.requests == [
        b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]\r\n\r\n",
        b"CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\n\r\n",
    ]


async def test_wss_through_http_proxy(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server,
            http_proxy() as proxy,
            connect(
                f"wss://localhost:{server.port}/", proxy=proxy.url(), ssl=client_ssl_context
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert ws.transport.extra(TLSAttribute.ssl_object).server_hostname == "localhost"
            assert ws.transport.extra(anyio.abc.SocketAttribute.remote_port) == proxy.port
            assert proxy.requests == [connect_request(f"localhost:{server.port}")]
    # The proxy only saw TLS: a handshake record (content type 22) came first.
    assert proxy.tunnelled[0][0] == 22


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_through_https_proxy(
    scheme: str, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # For wss://, TLS to the server runs inside TLS to the proxy.
    server_ssl = server_ssl_context if scheme == "wss" else None
    client_ssl = client_ssl_context if scheme == "wss" else None
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server,
            http_proxy(ssl_context=server_ssl_context) as proxy,
            connect(
                f"{scheme}://localhost:{server.port}/",
                proxy=proxy.url(host="localhost"),
                proxy_ssl=client_ssl_context,
                ssl=client_ssl,
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00" * 100_000)
            assert await ws.recv() == b"\x00" * 100_000
            assert proxy.requests == [connect_request(f"localhost:{server.port}")]
        assert ws.close_code == 1000


async def test_https_proxy_certificate_checked_against_proxy_server_hostname(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(ssl_context=server_ssl_context) as proxy:
            # The certificate is for localhost, 127.0.0.1 and ::1.
            with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
                async with connect(
                    "ws://localhost/",
                    proxy=proxy.url(),
                    proxy_ssl=client_ssl_context,
                    proxy_server_hostname="example.com",
                ):
                    pytest.fail("connected")
            # The default context trusts the system's CAs, not the test CA.
            with pytest.raises(ssl.SSLCertVerificationError) as default_excinfo:
                async with connect("ws://localhost/", proxy=proxy.url()):
                    pytest.fail("connected")
    assert "Hostname mismatch" in excinfo.value.verify_message
    assert default_excinfo.value.verify_message == "unable to get local issuer certificate"
    assert proxy.requests == []


async def test_proxy_authorization_from_userinfo() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            http_proxy(credentials=("user", "p@ss:wörd")) as proxy,
            # Userinfo is percent-decoded; the password may hold a colon.
            connect(
                f"ws://127.0.0.1:{server.port}/",
                proxy=proxy.url("user:p%40ss:w%C3%B6rd@"),
                user_agent_header="test",
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            port = server.port
    token = base64.b64encode("user:p@ss:wörd".encode()).decode()
    assert proxy.requests == [
        f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"User-Agent: test\r\nProxy-Authorization: Basic {token}\r\n\r\n".encode()
    ]


async def test_http10_answer_accepted() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            http_proxy(established=b"HTTP/1.0 200 Connection established\r\n\r\n") as proxy,
            connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.url()) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_body_headers_of_2xx_ignored() -> None:
    # RFC 7231, section 4.3.6: a client ignores Content-Length and Transfer-Encoding
    # in a 2xx answer to CONNECT; what follows the head is the tunnel.
    established = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            http_proxy(established=established) as proxy,
            connect(f"ws://127.0.0.1:{server.port}/", proxy=proxy.url()) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_bytes_after_the_answer_are_kept() -> None:
    # The server speaks first, and the proxy sends its first bytes in the same write
    # as its answer: they must come out of the tunnel first.
    with anyio.fail_after(TIMEOUT):
        async with raw_server(b"greeting") as port, http_proxy(coalesce=True) as proxy:
            uri = parse_uri(f"ws://127.0.0.1:{port}/")
            stream = await open_tcp_stream(uri, proxy=proxy.url(), user_agent_header=None)
            async with stream:
                assert await stream.receive(3) == b"gre"
                assert await stream.receive() == b"eting"
                await stream.send(b"echo")
                assert await stream.receive() == b"echo"
                assert stream.extra(anyio.abc.SocketAttribute.remote_port) == proxy.port
                await stream.send_eof()


# HTTP CONNECT: failures -----------------------------------------------------------------


async def test_proxy_requires_credentials() -> None:
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(credentials=("user", "pass")) as proxy:
            with pytest.raises(InvalidProxyStatus) as excinfo:
                async with connect("ws://127.0.0.1:1/", proxy=proxy.url("user:wrong@")):
                    pytest.fail("connected")
    assert str(excinfo.value) == "proxy rejected connection: HTTP 407"
    assert isinstance(excinfo.value, ProxyError)
    assert isinstance(excinfo.value, InvalidHandshake)
    response = excinfo.value.response
    assert response.status_code == 407
    assert response.reason_phrase == "Proxy Authentication Required"
    assert response.headers["Proxy-Authenticate"] == 'Basic realm="test"'


async def test_proxy_forbids() -> None:
    # The body of a refusal isn't read.
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 1000\r\n\r\nNot here"
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(answer=answer) as proxy:
            with pytest.raises(InvalidProxyStatus) as excinfo:
                async with connect("wss://example.com/", proxy=proxy.url()):
                    pytest.fail("connected")
    assert str(excinfo.value) == "proxy rejected connection: HTTP 403"
    assert excinfo.value.response.body == b""


@pytest.mark.parametrize(
    ("answer", "cause_type", "cause"),
    [
        pytest.param(
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
            InvalidMessage,
            "invalid HTTP status line: b'SSH-2.0-OpenSSH_9.2'",
            id="garbage",
        ),
        pytest.param(
            b"HTTP/2.0 200 OK\r\n\r\n",
            InvalidMessage,
            "unsupported HTTP version; expected HTTP/1.1 or HTTP/1.0: b'HTTP/2.0'",
            id="version",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent",
            EOFError,
            "connection closed while reading HTTP headers",
            id="truncated",
        ),
        pytest.param(b"", EOFError, "connection closed while reading HTTP status line", id="eof"),
    ],
)
async def test_invalid_proxy_answer(answer: bytes, cause_type: type, cause: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(answer=answer) as proxy:
            with pytest.raises(InvalidProxyMessage) as excinfo:
                async with connect("ws://127.0.0.1:1/", proxy=proxy.url()):
                    pytest.fail("connected")
    assert str(excinfo.value) == "did not receive a valid HTTP response from proxy"
    assert type(excinfo.value.__cause__) is cause_type
    assert str(excinfo.value.__cause__) == cause


async def test_proxy_unreachable() -> None:
    # A bound socket that doesn't listen: connecting to its port is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as excinfo:
            async with connect("ws://127.0.0.1:1/", proxy=f"http://127.0.0.1:{port}"):
                pytest.fail("connected")
    # What a direct connection raises: the socket's error.
    assert type(excinfo.value) is ConnectionRefusedError
    assert excinfo.value.errno == errno.ECONNREFUSED


async def test_open_timeout_covers_the_proxy() -> None:
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(silent=True) as proxy:
            start = anyio.current_time()
            with pytest.raises(TimeoutError):
                async with connect("ws://127.0.0.1:1/", proxy=proxy.url(), open_timeout=200 * MS):
                    pytest.fail("connected")
            elapsed = anyio.current_time() - start
    assert elapsed >= 200 * MS * 0.9
    assert len(proxy.requests) == 1


# Options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("ftp://proxy", "scheme ftp isn't supported"),
        ("proxy:3128", "scheme proxy isn't supported"),
        ("http://", "hostname isn't provided"),
        ("http://proxy/path", "path is meaningless"),
        ("http://proxy?query", "query is meaningless"),
        ("http://proxy#fragment", "fragment is meaningless"),
        ("http://user@proxy", "username provided without password"),
        ("http://proxy:port", "invalid port"),
        ("http://proxy:99999", "invalid port"),
        ("http://proxy:0", "invalid port"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://us%ffer:pass@proxy", "credentials aren't valid UTF-8"),
    ],
)
def test_invalid_proxy(proxy: str, message: str) -> None:
    with pytest.raises(InvalidProxy) as excinfo:
        connect("ws://example.com/", proxy=proxy)
    assert str(excinfo.value) == f"{proxy} isn't a valid proxy: {message}"
    assert excinfo.value.proxy == proxy
    assert excinfo.value.msg == message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy", Proxy("http", "proxy", 80)),
        ("http://Proxy.Example:3128/", Proxy("http", "proxy.example", 3128)),
        ("https://proxy", Proxy("https", "proxy", 443)),
        ("socks5h://proxy", Proxy("socks5h", "proxy", 1080)),
        ("socks5://u:p@proxy:9050", Proxy("socks5", "proxy", 9050, "u", "p")),
        ("socks4a://proxy", Proxy("socks4a", "proxy", 1080)),
        ("socks4://[::1]:1080", Proxy("socks4", "::1", 1080)),
        ("http://user:@proxy", Proxy("http", "proxy", 80, "user", "")),
        ("http://bücher.example", Proxy("http", "xn--bcher-kva.example", 80)),
        # IDNA 2008, as for the server's host (IDNA 2003 said fass.de).
        ("http://fa\xdf.de", Proxy("http", "xn--fa-hia.de", 80)),
    ],
)
def test_parse_proxy(url: str, expected: Proxy) -> None:
    assert parse_proxy(url) == expected


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
async def test_proxy_ssl_needs_https_proxy(scheme: str, client_ssl_context: ssl.SSLContext) -> None:
    article = "an" if scheme == "http" else "a"
    with pytest.raises(ValueError) as excinfo:
        async with connect(
            "ws://127.0.0.1:1/", proxy=f"{scheme}://127.0.0.1:1", proxy_ssl=client_ssl_context
        ):
            pytest.fail("connected")
    assert (
        str(excinfo.value) == f"proxy_ssl argument is incompatible with {article} {scheme}:// proxy"
    )


async def test_stream_given_means_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            async with connect("ws://example.com/", stream=stream) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError) as excinfo:
        async with connect("ws://127.0.0.1:1/", proxy="socks5h://127.0.0.1:1"):
            pytest.fail("connected")
    assert str(excinfo.value) == (
        "connecting through a SOCKS proxy requires python-socks: pip install 'anyws[socks]'"
    )
    assert isinstance(excinfo.value.__cause__, ImportError)


# The environment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "uri", "expected"),
    [
        pytest.param({}, "ws://example.com/", None, id="none"),
        pytest.param({"http_proxy": "http://h:1"}, "ws://example.com/", "http://h:1", id="http"),
        pytest.param({"http_proxy": "http://h:1"}, "wss://example.com/", None, id="http-not-wss"),
        pytest.param({"https_proxy": "http://s:1"}, "wss://example.com/", "http://s:1", id="https"),
        pytest.param({"https_proxy": "http://s:1"}, "ws://example.com/", None, id="https-not-ws"),
        pytest.param({"HTTPS_PROXY": "http://S:1"}, "wss://example.com/", "http://S:1", id="upper"),
        pytest.param(
            {"HTTPS_PROXY": "http://S:1", "https_proxy": "http://s:1"},
            "wss://example.com/",
            "http://s:1",
            id="lower-wins",
        ),
        pytest.param(
            {"all_proxy": "socks5h://a:1"}, "wss://example.com/", "socks5h://a:1", id="all"
        ),
        pytest.param(
            {"ALL_PROXY": "socks5h://a:1", "http_proxy": "http://h:1"},
            "ws://example.com/",
            "http://h:1",
            id="scheme-before-all",
        ),
        pytest.param(
            {"wss_proxy": "http://w:1", "https_proxy": "http://s:1"},
            "wss://example.com/",
            "http://w:1",
            id="wss-first",
        ),
        pytest.param(
            {"ws_proxy": "http://w:1", "http_proxy": "http://h:1"},
            "ws://example.com/",
            "http://w:1",
            id="ws-first",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "*"}, "ws://example.com/", None, id="no-*"
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "localhost, .example.com"},
            "ws://sub.example.com/",
            None,
            id="no-suffix",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "NO_PROXY": "example.com"},
            "ws://example.com/",
            None,
            id="no-domain",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "example.com"},
            "ws://notexample.com/",
            "http://a:1",
            id="no-not-a-suffix",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "example.com:8080"},
            "ws://example.com:8080/",
            None,
            id="no-host-port",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "example.com:8080"},
            "ws://example.com/",
            "http://a:1",
            id="no-other-port",
        ),
        pytest.param(
            {"all_proxy": "http://a:1", "no_proxy": "127.0.0.1,::1"},
            "ws://[::1]:8080/",
            None,
            id="no-ipv6",
        ),
    ],
)
def test_get_proxy(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], uri: str, expected: str | None
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert get_proxy(parse_uri(uri)) == expected


async def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server, http_proxy() as proxy:
            monkeypatch.setenv("http_proxy", proxy.url())
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
            assert len(proxy.requests) == 1
            # no_proxy, or proxy=None, connects directly.
            monkeypatch.setenv("no_proxy", "127.0.0.1")
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                assert ws.transport.extra(anyio.abc.SocketAttribute.remote_port) == server.port
            monkeypatch.delenv("no_proxy")
            async with connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
                assert ws.transport.extra(anyio.abc.SocketAttribute.remote_port) == server.port
            assert len(proxy.requests) == 1


async def test_invalid_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "ftp://proxy")
    with pytest.raises(InvalidProxy) as excinfo:
        async with connect("wss://example.com/"):
            pytest.fail("connected")
    assert str(excinfo.value) == "ftp://proxy isn't a valid proxy: scheme ftp isn't supported"


# parse_response(proxy=True) -------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 10])
def test_parse_proxy_response_stops_at_the_head(start: int) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ntunnel"
    assert parse_response(data[:start], start=0, proxy=True) is None
    parsed = parse_response(data, start=start, proxy=True)
    assert parsed is not None
    response, size = parsed
    assert (response.status_code, response.body, data[size:]) == (200, b"", b"tunnel")
    # Without proxy=True, the body is read, and HTTP/1.0 is refused.
    assert parse_response(data)[0].body == b"tunne"  # type: ignore[index]
    with pytest.raises(InvalidMessage):
        parse_response(b"HTTP/1.0 200 OK\r\n\r\n")


# SOCKS ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_microsocks(*args: str) -> Iterator[int]:
    binary = shutil.which("microsocks")
    if binary is None:
        # .ci/run sets this when it couldn't install microsocks, to say why.
        if reason := os.environ.get("ANYWS_TESTS_NO_MICROSOCKS"):
            pytest.skip(reason)
        message = "microsocks isn't installed (apt-get install microsocks): no SOCKS server"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI the SOCKS tests must run, see .ci/run")
        pytest.skip(message)
    pytest.importorskip("python_socks")
    # A free port, then microsocks binds it: another process could take it in between,
    # which start-up then reports.
    port = _free_port()
    with subprocess.Popen(
        [binary, "-i", "127.0.0.1", "-p", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            # microsocks says nothing when it's ready: poll until it accepts connections.
            deadline = time.monotonic() + 10
            while True:
                if process.poll() is not None:
                    stderr = process.stderr.read() if process.stderr else b""
                    pytest.fail(f"microsocks exited with {process.returncode}: {stderr!r}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"microsocks didn't listen on port {port} within 10 s")
                    time.sleep(0.01)
            yield port
        finally:
            process.terminate()


@pytest.fixture(scope="session")
def socks_port() -> Iterator[int]:
    """The port of a microsocks SOCKS5 server without authentication."""
    yield from _start_microsocks()


@pytest.fixture(scope="session")
def socks_auth_port() -> Iterator[int]:
    """The port of a microsocks SOCKS5 server requiring user ``user``, password ``p@ss``."""
    yield from _start_microsocks("-u", "user", "-P", "p@ss")


def localhost_address() -> str:
    """What the system's resolver (microsocks' too) gives first for localhost."""
    return str(socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][0])


@pytest.mark.parametrize("scheme", ["socks5h", "socks5"])
async def test_ws_through_socks(scheme: str, socks_port: int) -> None:
    # With socks5, python-socks resolves localhost here and prefers IPv4; with
    # socks5h, microsocks resolves it, with the system's resolver.
    host = localhost_address() if scheme == "socks5h" else "127.0.0.1"
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, host, 0) as server,
            connect(
                f"ws://localhost:{server.port}/", proxy=f"{scheme}://127.0.0.1:{socks_port}"
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert ws.transport.extra(anyio.abc.SocketAttribute.remote_port) == socks_port
        assert ws.close_code == 1000


@pytest.mark.parametrize("scheme", ["socks5h", "socks5"])
async def test_socks_with_credentials(scheme: str, socks_auth_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            connect(
                f"ws://127.0.0.1:{server.port}/",
                proxy=f"{scheme}://user:p%40ss@127.0.0.1:{socks_auth_port}",
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"


@pytest.mark.parametrize("userinfo", ["", "user:wrong@"])
async def test_socks_credentials_refused(userinfo: str, socks_auth_port: int) -> None:
    import python_socks

    with anyio.fail_after(TIMEOUT), pytest.raises(ProxyError) as excinfo:
        async with connect(
            "ws://127.0.0.1:1/", proxy=f"socks5h://{userinfo}127.0.0.1:{socks_auth_port}"
        ):
            pytest.fail("connected")
    assert type(excinfo.value) is ProxyError
    assert str(excinfo.value) == "failed to connect to SOCKS proxy"
    assert isinstance(excinfo.value.__cause__, python_socks.ProxyError)


async def test_wss_through_socks(
    socks_port: int, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, localhost_address(), 0, ssl=server_ssl_context) as server,
            connect(
                f"wss://localhost:{server.port}/",
                proxy=f"socks5h://127.0.0.1:{socks_port}",
                ssl=client_ssl_context,
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert ws.transport.extra(TLSAttribute.ssl_object).server_hostname == "localhost"


async def test_socks5h_resolves_at_the_proxy(socks_port: int) -> None:
    # A name nobody resolves: socks5 fails to resolve it here, socks5h has the proxy
    # try, and the proxy reports the failure.
    import python_socks

    uri = "ws://anyws-test.invalid/"
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(OSError) as local:
            async with connect(uri, proxy=f"socks5://127.0.0.1:{socks_port}"):
                pytest.fail("connected")
        with pytest.raises(ProxyError) as remote:
            async with connect(uri, proxy=f"socks5h://127.0.0.1:{socks_port}"):
                pytest.fail("connected")
    assert isinstance(local.value, socket.gaierror)
    assert isinstance(remote.value.__cause__, python_socks.ProxyError)


async def test_socks_proxy_unreachable() -> None:
    pytest.importorskip("python_socks")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as excinfo:
            async with connect("ws://127.0.0.1:1/", proxy=f"socks5h://127.0.0.1:{port}"):
                pytest.fail("connected")
    # What a direct connection raises (the socket's error), not python-socks' wrapper.
    assert type(excinfo.value) is ConnectionRefusedError
    assert excinfo.value.errno == errno.ECONNREFUSED


async def test_open_timeout_covers_socks() -> None:
    pytest.importorskip("python_socks")
    with anyio.fail_after(TIMEOUT):
        async with http_proxy(silent=True) as silent:  # reads, never answers
            with pytest.raises(TimeoutError):
                async with connect(
                    "ws://127.0.0.1:1/",
                    proxy=f"socks5h://127.0.0.1:{silent.port}",
                    open_timeout=200 * MS,
                ):
                    pytest.fail("connected")


@pytest.mark.parametrize(
    ("scheme", "requested"), [("socks4a", "localhost"), ("socks4", "127.0.0.1")]
)
async def test_ws_through_socks4(scheme: str, requested: str) -> None:
    # socks4a has the proxy resolve the host name; socks4 sends the address it
    # resolved here. python-socks sends the user name as the SOCKS4 user id.
    pytest.importorskip("python_socks")
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            socks4_proxy() as (port, requests),
            connect(
                f"ws://localhost:{server.port}/", proxy=f"{scheme}://me:x@127.0.0.1:{port}"
            ) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert requests == [(requested, server.port, b"me")]
