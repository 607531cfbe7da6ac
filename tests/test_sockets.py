"""``sock=``: servers on listening sockets made elsewhere, clients on connected ones.

Over real TCP (anyws' own asyncio transport on asyncio, anyio's streams on trio), TLS
and Unix sockets, on every backend; and through `anyws.sync`.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator

import anyio
import pytest

import anyws
import anyws.sync
from anyws import InvalidStatus, ServerConnection, connect, serve, unix_connect, unix_serve
from anyws.sansio import Response
from tests.conftest import MS


TIMEOUT = 10_000 * MS

HAS_UNIX = sys.platform != "win32" and hasattr(socket, "AF_UNIX")


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def bound_socket(*, listen: int | None = None) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if listen is not None:
        sock.listen(listen)
    return sock


@pytest.fixture
def unix_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="anyws-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(directory, "ws.sock")
    finally:
        shutil.rmtree(directory)


# serve(sock=...) ----------------------------------------------------------------------


@pytest.mark.parametrize("listening", [False, True], ids=["bound", "listening"])
async def test_serve_on_given_socket(listening: bool) -> None:
    """A bound socket is listened on; the server owns it and closes it with itself."""
    sock = bound_socket(listen=8 if listening else None)
    port = sock.getsockname()[1]
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, sock=sock) as server:
            assert server.port == port
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
    assert sock.fileno() == -1


@pytest.mark.parametrize(
    "kwargs",
    [{"host": "127.0.0.1"}, {"port": 0}, {"reuse_port": True}],
    ids=["host", "port", "reuse_port"],
)
def test_serve_sock_excludes_address(kwargs: dict[str, object]) -> None:
    with bound_socket() as sock, pytest.raises(ValueError) as exc_info:
        serve(echo, sock=sock, **kwargs)  # type: ignore[arg-type]
    assert str(exc_info.value) == "serve() can't take host, port or reuse_port with sock"


async def test_serve_unbound_socket() -> None:
    with socket.socket() as sock, pytest.raises(ValueError) as exc_info:
        async with serve(echo, sock=sock):
            pass  # pragma: no cover
    assert str(exc_info.value) == "serve() needs a bound socket for sock"


async def test_serve_datagram_socket() -> None:
    with socket.socket(type=socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError) as exc_info:
            async with serve(echo, sock=sock):
                pass  # pragma: no cover
    assert str(exc_info.value) == (f"serve() needs a SOCK_STREAM socket, got {socket.SOCK_DGRAM!r}")


# connect(sock=...) --------------------------------------------------------------------


async def test_connect_on_given_socket() -> None:
    """The URI gives the request; the connection owns the socket and closes it."""

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.headers['Host']} {ws.request.path}")
        await echo(ws)

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            async with connect("ws://example.com/chat", sock=sock) as ws:
                assert await ws.recv() == "example.com /chat"
                await ws.send(b"\x00\xff")
                assert await ws.recv() == b"\x00\xff"
                assert ws.remote_address[1] == server.port
            assert sock.fileno() == -1


async def test_connect_on_given_socket_with_tls(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            async with connect("wss://localhost/", sock=sock, ssl=client_ssl_context) as ws:
                await ws.send("secret")
                assert await ws.recv() == "secret"


async def test_connect_on_given_socket_follows_no_redirect() -> None:
    async def redirect(ws: ServerConnection, request: anyws.Request) -> Response:
        response = ws.respond(302, "")
        response.headers["Location"] = "/elsewhere"
        return response

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=redirect) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            with pytest.raises(InvalidStatus) as exc_info:
                async with connect("ws://127.0.0.1/", sock=sock):
                    pass  # pragma: no cover
    assert exc_info.value.response.status_code == 302
    assert sock.fileno() == -1


async def test_connect_unconnected_socket() -> None:
    with socket.socket() as sock, pytest.raises(ValueError) as exc_info:
        async with connect("ws://127.0.0.1/", sock=sock):
            pass  # pragma: no cover
    assert str(exc_info.value) == "connect() needs a connected socket for sock"


async def test_connect_not_a_socket() -> None:
    with pytest.raises(TypeError) as exc_info:
        async with connect("ws://127.0.0.1/", sock=3):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert str(exc_info.value) == "connect() expected a socket for sock, got int"


def test_connect_stream_and_sock() -> None:
    with socket.socket() as sock, pytest.raises(ValueError) as exc_info:
        connect("ws://127.0.0.1/", sock=sock, stream=object())  # type: ignore[arg-type]
    assert str(exc_info.value) == "connect() can't take both stream and sock"


# Unix sockets -------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")
async def test_unix_serve_and_connect_on_given_sockets(unix_path: str) -> None:
    """unix_serve and unix_connect take sockets; the server leaves the file it didn't make."""
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(unix_path)
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, sock=listening) as server:
            assert server.sockets == [unix_path]
            client = socket.socket(socket.AF_UNIX)
            client.connect(unix_path)
            async with unix_connect(sock=client) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                assert ws.request is not None
                assert ws.request.headers["Host"] == "localhost"
    assert listening.fileno() == -1
    assert await anyio.Path(unix_path).exists()


@pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")
def test_unix_path_or_sock(unix_path: str) -> None:
    with pytest.raises(ValueError) as exc_info:
        unix_serve(echo)
    assert str(exc_info.value) == "unix_serve() needs either path or sock"
    with socket.socket(socket.AF_UNIX) as sock:
        with pytest.raises(ValueError) as exc_info:
            unix_serve(echo, unix_path, sock=sock)
        assert str(exc_info.value) == "unix_serve() needs either path or sock"
        with pytest.raises(ValueError) as exc_info:
            unix_serve(echo, sock=sock, mode=0o600)
        assert str(exc_info.value) == "unix_serve() can't set the mode of a socket given as sock"
        with pytest.raises(ValueError) as exc_info:
            unix_connect(unix_path, sock=sock)
        assert str(exc_info.value) == "unix_connect() needs either path or sock"
    with pytest.raises(ValueError) as exc_info:
        unix_connect()
    assert str(exc_info.value) == "unix_connect() needs either path or sock"


# anyws.sync ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_serve_and_connect_on_given_sockets(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")

    def handler(ws: anyws.sync.ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    sock = bound_socket()
    port = sock.getsockname()[1]
    with anyws.sync.serve(handler, sock=sock, backend=backend) as server:
        assert server.port == port
        client = socket.create_connection(("127.0.0.1", port))
        with anyws.sync.connect("ws://127.0.0.1/", sock=client, backend=backend) as ws:
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
    assert sock.fileno() == -1
    assert client.fileno() == -1
