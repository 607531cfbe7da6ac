"""Redirects during the opening handshake, and HTTP Basic credentials from the URI.

End to end against real anyws servers on 127.0.0.1 whose ``process_request`` answers
with redirects and records the requests it saw, on every backend; then the pure rules
of `anyws._redirect` on their own.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from anyws import (
    ClientConnection,
    InvalidStatus,
    InvalidURI,
    Request,
    Response,
    SecurityError,
    Server,
    ServerConnection,
    connect,
    serve,
)
from anyws._redirect import format_uri, redirect_target, same_origin, strip_credentials
from anyws.sansio import Headers, parse_uri
from tests.conftest import MS
from tests.test_client_server import raw_server, read_request


TIMEOUT = 10_000 * MS


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class Recorder:
    """A ``process_request`` that records each request and redirects some paths.

    ``routes`` maps a path to ``(status, location)``; a location may use ``{port}``
    (this server's port) and ``{other}`` (the ``other`` server's port).
    """

    def __init__(self, routes: dict[str, tuple[int, str]] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[Request] = []
        self.port = 0
        self.other = 0

    def __call__(self, ws: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        route = self.routes.get(request.path)
        if route is None:
            return None
        status, location = route
        response = ws.respond(status, "moved\n")
        response.headers["Location"] = location.format(port=self.port, other=self.other)
        return response

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@asynccontextmanager
async def recording_server(
    routes: dict[str, tuple[int, str]] | None = None, **kwargs: Any
) -> AsyncIterator[tuple[Server, Recorder]]:
    recorder = Recorder(routes)
    async with serve(echo, "127.0.0.1", 0, process_request=recorder, **kwargs) as server:
        recorder.port = server.port
        yield server, recorder


async def assert_echo(ws: ClientConnection) -> None:
    await ws.send("hello")
    assert await ws.recv() == "hello"


# Following redirects -----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_relative_redirect(status: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server({"/old": (status, "new?x=1")}) as (server, recorder),
            connect(f"ws://127.0.0.1:{server.port}/old") as ws,
        ):
            await assert_echo(ws)
            assert ws.protocol.uri == parse_uri(f"ws://127.0.0.1:{server.port}/new?x=1")
            assert ws.request is not None
            assert ws.request.path == "/new?x=1"
    assert recorder.paths == ["/old", "/new?x=1"]


async def test_redirect_chain_to_another_port() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server() as (second, second_recorder),
            recording_server({"/a": (302, "/b"), "/b": (307, "ws://127.0.0.1:{other}/c")}) as (
                first,
                first_recorder,
            ),
        ):
            first_recorder.other = second.port
            async with connect(f"ws://127.0.0.1:{first.port}/a") as ws:
                await assert_echo(ws)
                assert ws.protocol.uri.port == second.port
    assert first_recorder.paths == ["/a", "/b"]
    assert second_recorder.paths == ["/c"]
    [request] = second_recorder.requests
    assert request.headers["Host"] == f"127.0.0.1:{first_recorder.other}"


async def send_until_broken(stream: anyio.abc.SocketStream) -> None:
    while True:
        await stream.send(b"x" * 1024)


async def test_each_abandoned_stream_is_closed() -> None:
    # A raw server answers with a redirect, then checks that the client closed the
    # connection; the target of the redirect waits for that before it answers, so
    # the client must close each abandoned stream before the next hop completes.
    closed = anyio.Event()

    async def after_close(ws: ServerConnection, request: Request) -> None:
        await closed.wait()

    async def redirect(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(
            b"HTTP/1.1 302 Found\r\n"
            + f"Location: ws://127.0.0.1:{target.port}/\r\n".encode()
            + b"Content-Length: 0\r\n\r\n"
        )
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stream.receive()
        # Closed, not only half-closed: the client's socket answers with RST. (A
        # half-closed one would take the data until its buffer filled, then block.)
        with pytest.raises(anyio.BrokenResourceError):
            await send_until_broken(stream)
        closed.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, process_request=after_close) as target,
            raw_server(redirect) as port,
            connect(f"ws://127.0.0.1:{port}/") as ws,
        ):
            await assert_echo(ws)


# Credentials ---------------------------------------------------------------------------


async def test_basic_auth_percent_encoded_userinfo() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server() as (server, recorder),
            connect(f"ws://us%40er:p%3Ass%20w%C3%A9@127.0.0.1:{server.port}/") as ws,
        ):
            await assert_echo(ws)
    [request] = recorder.requests
    assert request.headers["Authorization"] == basic("us@er:p:ss wé")


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("/b", id="relative"),
        pytest.param("ws://127.0.0.1:{port}/b", id="absolute"),
    ],
)
async def test_same_origin_redirect_keeps_credentials(location: str) -> None:
    headers = {"Authorization": "Bearer t", "Cookie": "c=1", "X-Custom": "x"}
    with anyio.fail_after(TIMEOUT):
        async with recording_server({"/a": (302, location)}) as (server, recorder):
            async with connect(
                f"ws://user:pass@127.0.0.1:{server.port}/a", additional_headers=headers
            ) as ws:
                await assert_echo(ws)
            async with connect(f"ws://user:pass@127.0.0.1:{server.port}/a") as ws:
                await assert_echo(ws)
    first, second, third, fourth = recorder.requests
    for request in first, second:
        assert request.headers["Authorization"] == "Bearer t"
        assert request.headers["Cookie"] == "c=1"
        assert request.headers["X-Custom"] == "x"
    for request in third, fourth:
        assert request.headers["Authorization"] == basic("user:pass")


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("ws://127.0.0.1:{other}/b", id="other-port"),
        pytest.param("ws://localhost:{port}/b", id="other-host"),
    ],
)
async def test_cross_origin_redirect_drops_credentials(location: str) -> None:
    headers = [
        ("Authorization", "Bearer t"),
        ("Cookie", "c=1"),
        ("Proxy-Authorization", "Basic eA=="),
        ("X-Custom", "x"),
    ]
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server() as (other, other_recorder),
            recording_server({"/a": (302, location)}) as (server, recorder),
        ):
            recorder.other = other.port
            async with connect(
                f"ws://user:pass@127.0.0.1:{server.port}/a", additional_headers=headers
            ) as ws:
                await assert_echo(ws)
            async with connect(f"ws://user:pass@127.0.0.1:{server.port}/a") as ws:
                await assert_echo(ws)
    seen = recorder.requests + other_recorder.requests
    firsts = [request for request in seen if request.path == "/a"]
    seconds = [request for request in seen if request.path == "/b"]
    assert len(firsts) == len(seconds) == 2
    with_headers, with_userinfo = firsts
    assert with_headers.headers["Authorization"] == "Bearer t"
    assert with_headers.headers["Cookie"] == "c=1"
    assert with_userinfo.headers["Authorization"] == basic("user:pass")
    for request in seconds:
        assert "Authorization" not in request.headers
        assert "Cookie" not in request.headers
        assert "Proxy-Authorization" not in request.headers
    assert seconds[0].headers["X-Custom"] == "x"


async def test_cross_origin_redirect_drops_host_override() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server() as (other, other_recorder),
            recording_server({"/a": (302, "ws://127.0.0.1:{other}/b")}) as (server, recorder),
        ):
            recorder.other = other.port
            async with connect(
                f"ws://127.0.0.1:{server.port}/a", additional_headers={"Host": "example.com"}
            ) as ws:
                await assert_echo(ws)
    assert recorder.requests[0].headers["Host"] == "example.com"
    assert other_recorder.requests[0].headers["Host"] == f"127.0.0.1:{recorder.other}"


# Redirects that aren't followed ----------------------------------------------------------


async def test_wss_to_ws_is_refused(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server() as (plain, plain_recorder),
            recording_server({"/": (301, "ws://127.0.0.1:{other}/")}, ssl=server_ssl_context) as (
                secure,
                recorder,
            ),
        ):
            recorder.other = plain.port
            with pytest.raises(SecurityError) as excinfo:
                async with connect(f"wss://127.0.0.1:{secure.port}/", ssl=client_ssl_context):
                    pytest.fail("connected")
    assert str(excinfo.value) == (
        f"cannot follow redirect to non-secure URI ws://127.0.0.1:{recorder.other}/"
    )
    assert isinstance(excinfo.value.__cause__, InvalidStatus)
    assert excinfo.value.__cause__.response.status_code == 301
    assert plain_recorder.requests == []


async def test_wss_to_wss_on_another_origin(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            recording_server(ssl=server_ssl_context) as (other, other_recorder),
            recording_server({"/": (308, "wss://localhost:{other}/")}, ssl=server_ssl_context) as (
                secure,
                recorder,
            ),
        ):
            recorder.other = other.port
            # server_hostname applies to the first origin only.
            async with connect(
                f"wss://user:pass@127.0.0.1:{secure.port}/",
                ssl=client_ssl_context,
                server_hostname="127.0.0.1",
            ) as ws:
                await assert_echo(ws)
                assert ws.protocol.uri.host == "localhost"
    assert "Authorization" in recorder.requests[0].headers
    assert "Authorization" not in other_recorder.requests[0].headers


@pytest.mark.parametrize(("max_redirects", "expected"), [(None, 10), (2, 2)])
async def test_too_many_redirects(max_redirects: int | None, expected: int) -> None:
    kwargs = {} if max_redirects is None else {"max_redirects": max_redirects}
    with anyio.fail_after(TIMEOUT):
        async with recording_server({"/": (302, "/")}) as (server, recorder):
            with pytest.raises(SecurityError) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/", **kwargs):  # type: ignore[arg-type]
                    pytest.fail("connected")
    assert str(excinfo.value) == f"more than {expected} redirects"
    assert isinstance(excinfo.value.__cause__, InvalidStatus)
    assert len(recorder.requests) == expected + 1


async def test_max_redirects_zero_raises_invalid_status() -> None:
    with anyio.fail_after(TIMEOUT):
        async with recording_server({"/": (302, "/b")}) as (server, recorder):
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/", max_redirects=0):
                    pytest.fail("connected")
    assert excinfo.value.response.status_code == 302
    assert excinfo.value.response.headers["Location"] == "/b"
    assert recorder.paths == ["/"]


def test_negative_max_redirects() -> None:
    with pytest.raises(ValueError, match="max_redirects must be 0 or more"):
        connect("ws://localhost/", max_redirects=-1)


async def test_redirect_with_a_stream_raises_invalid_status() -> None:
    with anyio.fail_after(TIMEOUT):
        async with recording_server({"/": (302, "/b")}) as (server, recorder):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/", stream=stream):
                    pytest.fail("connected")
    assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 302"
    assert recorder.paths == ["/"]


@pytest.mark.parametrize(
    ("status", "location"),
    [
        pytest.param(300, "/b", id="300"),
        pytest.param(304, "/b", id="304"),
        pytest.param(302, None, id="no-location"),
    ],
)
async def test_not_a_redirect(status: int, location: str | None) -> None:
    def process_request(ws: ServerConnection, request: Request) -> Response:
        response = ws.respond(status, "")
        if location is not None:
            response.headers["Location"] = location
        return response

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/"):
                    pytest.fail("connected")
    assert excinfo.value.response.status_code == status


async def test_redirect_to_http_uri() -> None:
    with anyio.fail_after(TIMEOUT):
        async with recording_server({"/": (302, "https://example.com/")}) as (server, _):
            with pytest.raises(InvalidURI) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/"):
                    pytest.fail("connected")
    assert str(excinfo.value) == "https://example.com/ isn't a valid URI: scheme isn't ws or wss"
    assert isinstance(excinfo.value.__cause__, InvalidStatus)


async def test_open_timeout_bounds_the_whole_chain() -> None:
    # Each hop takes 100 ms; 10 redirects would take over a second, each hop far
    # less than open_timeout.
    async def process_request(ws: ServerConnection, request: Request) -> Response:
        await anyio.sleep(100 * MS)
        response = ws.respond(302, "")
        response.headers["Location"] = "/"
        return response

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(TimeoutError):
                async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=350 * MS):
                    pytest.fail("connected")


# The rules on their own ------------------------------------------------------------------


def redirect(status: int, *locations: str) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers([("Location", loc) for loc in locations])))


@pytest.mark.parametrize(
    ("base", "location", "expected"),
    [
        ("ws://h/a/b?q", "c", "ws://h/a/c"),
        ("ws://h/a/b?q", "../c?r", "ws://h/c?r"),
        ("ws://h/a", "?r", "ws://h/a?r"),
        ("ws://h/a", "//other:81/x", "ws://other:81/x"),
        ("ws://h/a", "wss://other/x", "wss://other/x"),
        ("ws://[::1]:8080/a", "/b", "ws://[::1]:8080/b"),
        ("ws://[fe80::1%25eth0]/a", "b", "ws://[fe80::1%25eth0]/b"),
        ("ws://h/a", " /spaced ", "ws://h/spaced"),
        ("ws://h/a", "/b?q#fragment", "ws://h/b?q"),
        ("ws://h/a", "ws://h\u00e9.example/", "ws://xn--h-bga.example/"),
        # IDNA 2008, as for connect()'s URI (IDNA 2003 said fass.de).
        ("ws://h/a", "ws://fa\u00df.de/", "ws://xn--fa-hia.de/"),
    ],
)
def test_redirect_target_resolution(base: str, location: str, expected: str) -> None:
    target = redirect_target(parse_uri(base), redirect(302, location))
    assert target == parse_uri(expected)


def test_redirect_target_credentials() -> None:
    base = parse_uri("ws://u:p@h/a")
    same = redirect_target(base, redirect(302, "ws://h:80/b"))
    assert same is not None
    assert same.user_info == ("u", "p")
    other = redirect_target(base, redirect(302, "ws://h:81/b"))
    assert other is not None
    assert other.user_info is None
    own = redirect_target(base, redirect(302, "ws://v:q@h:81/b"))
    assert own is not None
    assert own.user_info == ("v", "q")


def test_redirect_target_not_a_redirect() -> None:
    base = parse_uri("ws://h/")
    assert redirect_target(base, redirect(300, "/b")) is None
    assert redirect_target(base, redirect(302)) is None
    assert redirect_target(base, redirect(302, "/b", "/c")) is None


def test_same_origin_and_format_uri() -> None:
    assert same_origin(parse_uri("ws://h/a"), parse_uri("ws://H:80/b"))
    assert not same_origin(parse_uri("ws://h/"), parse_uri("wss://h:80/"))
    assert not same_origin(parse_uri("ws://h/"), parse_uri("ws://h2/"))
    assert format_uri(parse_uri("wss://u:p@[::1]/x?y")) == "wss://[::1]:443/x?y"


def test_strip_credentials() -> None:
    headers = Headers(
        [("authorization", "a"), ("X-A", "1"), ("Cookie", "c"), ("HOST", "h"), ("X-A", "2")]
    )
    stripped = strip_credentials(headers)
    assert stripped is not None
    assert stripped.items() == [("X-A", "1"), ("X-A", "2")]
    assert strip_credentials(None) is None
