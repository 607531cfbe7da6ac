"""`unix_connect` and `unix_serve`, over real Unix sockets, on every backend."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator

import anyio
import pytest

from anyws import (
    ConnectionClosedOK,
    InvalidStatus,
    Request,
    Response,
    ServerConnection,
    unix_connect,
    unix_serve,
)
from anyws.sansio import parse_uri
from tests.conftest import MS


pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(socket, "AF_UNIX"), reason="no Unix sockets"
)

TIMEOUT = 10_000 * MS

SERVER_LOGGER = "anyws.server"


@pytest.fixture
def path() -> Iterator[str]:
    """A socket path in a fresh directory, short enough for sun_path (108 bytes)."""
    directory = tempfile.mkdtemp(prefix="anyws-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(directory, "ws.sock")
    finally:
        shutil.rmtree(directory)


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_echo(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path) as server, unix_connect(path) as ws:
            assert server.sockets == [path]
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            assert ws.request is not None
            assert ws.request.headers["Host"] == "localhost"


async def test_uri_gives_host_and_path(path: str) -> None:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.headers['Host']} {ws.request.path}")

    with anyio.fail_after(TIMEOUT):
        async with (
            unix_serve(handler, path),
            unix_connect(path, "ws://example.com/chat?room=1") as ws,
        ):
            assert await ws.recv() == "example.com /chat?room=1"


async def test_wss(
    path: str, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            unix_serve(echo, path, ssl=server_ssl_context),
            # The URI defaults to wss://localhost/ with ssl: the certificate's name.
            unix_connect(path, ssl=client_ssl_context) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_no_port(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path) as server:
            with pytest.raises(RuntimeError) as excinfo:
                _ = server.port
            assert str(excinfo.value) == "the server has no TCP listener"


async def test_logs_listening_path(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == SERVER_LOGGER]
    assert messages == [f"server listening on {path}", "server closing", "server closed"]


async def test_health_check_logs_unix_peer(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        return ws.respond(200, "OK\n")

    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path, process_request=process_request):
            with pytest.raises(InvalidStatus) as excinfo:
                async with unix_connect(path, "ws://localhost/healthz"):
                    pytest.fail("connected")
            assert excinfo.value.response.status_code == 200
    [record] = [r for r in caplog.records if r.getMessage().startswith("HTTP response sent")]
    assert record.levelno == logging.INFO
    assert record.getMessage() == "HTTP response sent (200 OK) for /healthz from unix socket"


async def test_socket_file_removed_on_close(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path):
            assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert not await anyio.Path(path).exists()


async def test_socket_file_removed_when_cancelled(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(unix_serve(echo, path).serve)
            assert await anyio.Path(path).exists()
            tg.cancel_scope.cancel()
        assert not await anyio.Path(path).exists()


async def test_stale_socket_file_is_replaced(path: str) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # bound, never listened, closed: what a crash leaves
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path), unix_connect(path) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_other_file_at_path_is_kept(path: str) -> None:
    await anyio.Path(path).write_text("not a socket")
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(OSError):
            async with unix_serve(echo, path):
                pytest.fail("bound")
    assert await anyio.Path(path).read_text() == "not a socket"


async def test_replaced_socket_file_is_left_alone(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path):
            # Another server took the path over (its own, newer socket).
            os.unlink(path)
            with socket.socket(socket.AF_UNIX) as other:
                other.bind(path)
        assert stat.S_ISSOCK(os.stat(path).st_mode)


async def test_mode(path: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, path, mode=0o600):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's abstract namespace")
async def test_abstract_namespace() -> None:
    name = f"\0anyws-test-{uuid.uuid4().hex}"
    with anyio.fail_after(TIMEOUT):
        async with unix_serve(echo, name) as server, unix_connect(name) as ws:
            assert server.sockets == [name.encode()]  # as getsockname() gives it
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_graceful_shutdown(path: str) -> None:
    opened = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        await ws.wait_closed()

    with anyio.fail_after(TIMEOUT):
        async with unix_serve(handler, path) as server, unix_connect(path) as ws:
            await opened.wait()
            assert await server.aclose() == 0
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001
            assert not await anyio.Path(path).exists()


async def test_connect_to_missing_socket(path: str) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(FileNotFoundError):
        async with unix_connect(path):
            pytest.fail("connected")


async def test_connect_to_socket_nobody_listens_on(path: str) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionRefusedError):
        async with unix_connect(path):
            pytest.fail("connected")


async def test_cross_origin_hop_refused(path: str) -> None:
    # What a redirect to another origin would ask for: there's nowhere to go.
    client = unix_connect(path, "ws://localhost/")
    with pytest.raises(ValueError) as excinfo:
        await client._open_stream(parse_uri("wss://example.com/next"))
    assert str(excinfo.value) == (
        "cannot follow cross-origin redirect to wss://example.com:443/next with a Unix socket"
    )


@pytest.mark.parametrize("name", ["host", "port", "reuse_port"])
def test_tcp_arguments_refused(path: str, name: str) -> None:
    with pytest.raises(TypeError) as excinfo:
        unix_serve(echo, path, **{name: 1})
    assert str(excinfo.value) == f"unix_serve() got an unexpected keyword argument '{name}'"
