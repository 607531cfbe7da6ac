"""The examples of the FAQ, topics and how-to pages run, on every backend.

Each example under ``examples/`` is imported from its file (the directory isn't a
package, and nox runs pytest without the repository root on ``sys.path``); its server
runs on port 0 and its client against it, under ``anyio.fail_after``. The tests assert
what the pages quote: messages, close codes, HTTP statuses.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import subprocess
import sys
import types
import urllib.request
from pathlib import Path

import anyio
import anyio.abc
import pytest

import anyws
from tests.conftest import MS


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Bound on each test body, in seconds.
TIMEOUT = 10_000 * MS


def load(relative: str) -> types.ModuleType:
    """Import ``examples/<relative>`` from its file, once."""
    name = "examples_content_" + re.sub(r"\W", "_", relative.removesuffix(".py"))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def uri(server: anyws.Server, path: str = "/", scheme: str = "ws", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{server.port}{path}"


async def http_get(port: int, path: str) -> tuple[str, dict[str, str], str]:
    """A plain HTTP/1.1 GET over raw TCP: status line, headers (lower-case), body."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body.decode()


# FAQ -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reset", "cause"), [(False, EOFError), (True, ConnectionResetError)], ids=["fin", "rst"]
)
async def test_faq_lost_tcp(reset: bool, cause: type[BaseException]) -> None:
    example = load("faq/lost_tcp.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            functools.partial(example.handler, reset=reset), "127.0.0.1", 0
        ) as server:
            exc = await example.client(uri(server))
    assert type(exc) is anyws.ConnectionClosedError
    assert str(exc) == "no close frame received or sent"
    assert isinstance(exc.__cause__, cause)


async def test_faq_keepalive_timeout() -> None:
    example = load("faq/keepalive_timeout.py")
    results: list[str] = []

    async def stuck(websocket: anyws.ServerConnection) -> None:
        # Stuck 10x longer than it takes the keepalive to give up (0.1 + 0.1 s).
        results.append(await example.handler(websocket, busy=2.0))

    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            stuck, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.1
        ) as server:
            client_sees = await example.client(uri(server))
    timeout = "1011 (internal error) keepalive ping timeout"
    assert client_sees == f"received {timeout}; then sent {timeout}"
    assert results == [f"sent {timeout}; no close frame received"]


async def test_recv_timeout() -> None:
    example = load("recv_timeout.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            events = await example.client(uri(server))
    assert events == ["no message within 0.1 s", "still nothing", "late"]


async def test_custom_connection() -> None:
    example = load("custom_connection.py")
    with anyio.fail_after(TIMEOUT):
        async with example.serve(0) as server:
            assert await example.client(uri(server)) == "example: [lobby] hello (sent 1)"


async def test_heartbeat() -> None:
    example = load("heartbeat.py")

    async def handler(websocket: anyws.ServerConnection) -> None:
        await example.handler(websocket, interval=0.05, answer_within=1.0)

    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(handler, "127.0.0.1", 0) as server:
            seen = await example.client(uri(server), beats=2)
    # Two heartbeats answered, the third not: the server closes with 4000.
    assert sorted(seen[:-1]) == ["echo", "heartbeat", "heartbeat", "heartbeat"]
    assert seen[-1] == "closed: 4000 heartbeat timeout"


async def test_concurrency(caplog: pytest.LogCaptureFixture) -> None:
    example = load("concurrency.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            received = await example.producer_consumer(uri(server))
            result = await example.error_in_body(uri(server))
    assert received == ["echo: 'message 0'", "echo: 'message 1'", "echo: 'message 2'"]
    assert result == ("bad input", 1011)


async def test_connection_tasks() -> None:
    example = load("connection_tasks.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            received = await example.client(uri(server))
            result = await example.error_in_task(uri(server))
    assert received == ["echo hello", "update 0", "update 1", "update 2"]
    assert result == ("unexpected 'update 0'", 1011)


async def test_anyio_streams() -> None:
    example = load("anyio_streams.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            received = await example.client(uri(server, "/jobs"))
    assert received == ["/jobs: update 0", "/jobs: update 1", "/jobs: update 2"]


# How-to: testing ---------------------------------------------------------------


def test_testing_howto_example() -> None:
    """The tests of "testing/test_app.py" (over "testing/app.py") pass, run as a user would."""
    pytest.importorskip("trio")  # they run on asyncio and trio
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "examples/testing/test_app.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b10 passed\b", result.stdout), result.stdout


# How-to: TLS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PEM files as the how-to makes them: a CA, a server and a client certificate."""
    trustme = pytest.importorskip("trustme")
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    files = {"ca": directory / "ca.pem"}
    ca.cert_pem.write_to_path(files["ca"])
    for name, identity in [("server", "localhost"), ("client", "client@example.com")]:
        cert = ca.issue_cert(identity)
        files[name] = directory / f"{name}.pem"
        files[f"{name}-key"] = directory / f"{name}-key.pem"
        cert.private_key_pem.write_to_path(files[f"{name}-key"])
        for index, blob in enumerate(cert.cert_chain_pems):
            blob.write_to_path(files[name], append=index > 0)
    return {name: str(path) for name, path in files.items()}


async def test_tls_own_certificates(certificates: dict[str, str]) -> None:
    server_example, client_example = load("tls/server.py"), load("tls/client.py")
    server_context = server_example.server_context(
        certificates["server"], certificates["server-key"]
    )
    client_context = client_example.client_context(certificates["ca"])
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(server_example.echo, "127.0.0.1", 0, ssl=server_context) as server:
            reply = await client_example.client(
                uri(server, scheme="wss", host="localhost"), client_context
            )
    assert reply == "hello over TLS"


async def test_tls_close_logs_no_error(
    certificates: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    server_example, client_example = load("tls/server.py"), load("tls/client.py")
    server_context = server_example.server_context(
        certificates["server"], certificates["server-key"]
    )
    client_context = client_example.client_context(certificates["ca"])
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(server_example.echo, "127.0.0.1", 0, ssl=server_context) as server:
            wss = uri(server, scheme="wss", host="localhost")
            assert await client_example.client(wss, client_context) == "hello over TLS"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []


async def test_tls_mutual(certificates: dict[str, str]) -> None:
    server_example, client_example = load("tls/server.py"), load("tls/client.py")
    server_context = server_example.server_context(
        certificates["server"], certificates["server-key"], certificates["ca"]
    )
    with_cert = client_example.client_context(
        certificates["ca"], certificates["client"], certificates["client-key"]
    )
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(server_example.echo, "127.0.0.1", 0, ssl=server_context) as server:
            wss = uri(server, scheme="wss", host="localhost")
            assert await client_example.client(wss, with_cert) == "hello over TLS"


async def test_tls_unknown_ca_fails(certificates: dict[str, str]) -> None:
    server_example = load("tls/server.py")
    server_context = server_example.server_context(
        certificates["server"], certificates["server-key"]
    )
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(server_example.echo, "127.0.0.1", 0, ssl=server_context) as server:
            with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
                async with anyws.connect(uri(server, scheme="wss", host="localhost")):
                    pass


# Topics: logging, security -------------------------------------------------------


async def test_logging_health_checks(caplog: pytest.LogCaptureFixture) -> None:
    example = load("logging_setup.py")
    caplog.set_level(logging.DEBUG, "anyws")
    app, health = example.serve(0, 0)
    with anyio.fail_after(TIMEOUT):
        async with app as server, health as health_server:
            caplog.clear()
            status, _, body = await http_get(health_server.port, "/healthz")
            assert (status, body) == ("HTTP/1.1 200 OK", "OK\n")
            assert [r for r in caplog.records if r.name == "myapp.health"] == []
            status, _, body = await http_get(server.port, "/healthz")
            assert (status, body) == ("HTTP/1.1 200 OK", "OK\n")
            # On the main port, a health check is one INFO line, without a traceback.
            infos = [r for r in caplog.records if r.levelno >= logging.INFO]
            assert [(r.levelname, r.exc_info) for r in infos] == [("INFO", None)]
            assert re.fullmatch(
                r"HTTP response sent \(200 OK\) for /healthz from 127\.0\.0\.1:\d+",
                infos[0].getMessage(),
            )
            async with anyws.connect(uri(server)) as websocket:
                await websocket.send("still a WebSocket server")
                assert await websocket.recv() == "still a WebSocket server"


async def test_security_limits() -> None:
    example = load("security.py")
    with anyio.fail_after(TIMEOUT):
        async with example.serve(0) as server:
            for origin in ["https://evil.example", None]:
                with pytest.raises(anyws.InvalidStatus) as exc_info:
                    async with anyws.connect(uri(server), origin=origin):
                        pass
                assert str(exc_info.value) == "server rejected WebSocket connection: HTTP 403"
            async with anyws.connect(uri(server), origin="https://chat.example.com") as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
                await websocket.send("x" * 100_000)
                with pytest.raises(anyws.ConnectionClosedError) as closed:
                    await websocket.recv()
    too_big = "1009 (message too big) message exceeds limit of 65536 bytes"
    assert str(closed.value) == f"received {too_big}; then sent {too_big}"


# How-to: nginx ---------------------------------------------------------------------


async def test_nginx_client_address() -> None:
    example = load("nginx/app.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            # What nginx sends for a client that forged a first entry.
            forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
            async with anyws.connect(uri(server), additional_headers=forwarded) as websocket:
                await websocket.send("hi")
                assert await websocket.recv() == "203.0.113.7 said: hi"
            async with anyws.connect(uri(server)) as websocket:
                await websocket.send("hi")
                assert await websocket.recv() == "127.0.0.1 said: hi"


# How-to: migrating -------------------------------------------------------------------


async def test_migrating_from_websockets(anyio_backend_name: str) -> None:
    example = load("migrating/from_websockets.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            load("migrating/from_trio_websocket.py").anyws_echo, "127.0.0.1", 0
        ) as server:
            assert await example.anyws_client(uri(server)) == "hello"
            if anyio_backend_name == "asyncio":  # websockets.asyncio needs asyncio
                pytest.importorskip("websockets")
                assert await example.websockets_client(uri(server)) == "hello"


async def test_migrating_from_trio_websocket(anyio_backend_name: str) -> None:
    example = load("migrating/from_trio_websocket.py")
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(example.anyws_echo, "127.0.0.1", 0) as server,
            anyws.connect(uri(server)) as websocket,
        ):
            await websocket.send("hello")
            assert await websocket.recv() == "hello"
        if anyio_backend_name != "trio":
            return
        trio_websocket = pytest.importorskip("trio_websocket")
        import trio

        async with trio.open_nursery() as nursery:
            tw_server = await nursery.start(
                trio_websocket.serve_websocket, example.trio_websocket_echo, "127.0.0.1", 0, None
            )
            async with anyws.connect(f"ws://127.0.0.1:{tw_server.port}/") as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
            nursery.cancel_scope.cancel()


# examples/chat -----------------------------------------------------------------------


async def test_chat_serves_the_page() -> None:
    chat = load("chat/server.py")
    with anyio.fail_after(TIMEOUT):
        async with chat.serve("127.0.0.1", 0) as server:
            status, headers, body = await http_get(server.port, "/")
            assert status == "HTTP/1.1 200 OK"
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert int(headers["content-length"]) == len(body.encode())
            assert "new WebSocket(`${scheme}//${location.host}/ws`)" in body
            status, _, _ = await http_get(server.port, "/favicon.ico")
            assert status == "HTTP/1.1 404 Not Found"


async def test_chat_relays_between_clients() -> None:
    chat = load("chat/server.py")
    with anyio.fail_after(TIMEOUT):
        async with (
            chat.serve("127.0.0.1", 0) as server,
            anyws.connect(uri(server, "/ws")) as alice,
        ):
            # Relayed to everyone, the sender included: getting it back means
            # the server counts us among its connections.
            await alice.send("alice joined")
            assert await alice.recv() == "alice joined"
            async with anyws.connect(uri(server, "/ws")) as bob:
                await bob.send("bob joined")
                assert await bob.recv() == "bob joined"
                assert await alice.recv() == "bob joined"
                await alice.send("hi bob")
                assert await bob.recv() == "hi bob"
                assert await alice.recv() == "hi bob"
                await bob.send(b"binary is ignored")
                await bob.send("x" * (chat.MAX_MESSAGE + 1))  # too long: ignored
                await bob.send("bye")
                assert await alice.recv() == "bye"
                assert await bob.recv() == "bye"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_chat_runs_with_one_command(backend: str) -> None:
    """``python -m examples.chat`` ("chat/__main__.py") starts the chat and serves the page."""
    if backend == "trio":
        pytest.importorskip("trio")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "examples.chat", "--port", "0", "--backend", backend]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.fullmatch(r"chat on (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops it\)\n", line)
            assert match, line
            with urllib.request.urlopen(match[1], timeout=10) as response:
                assert response.status == 200
                assert b"<title>anyws chat</title>" in response.read()
        finally:
            process.terminate()
            process.wait(timeout=10)
