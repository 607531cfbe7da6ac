"""The code shown in the prose of the how-to and topic pages runs, on every backend.

That code lives in ``examples/howto/<page>.py`` and ``examples/topics/<page>.py``, which
the pages include with ``literalinclude``; these tests import those files (with `load`)
and run their functions against servers on port 0 and real sockets on 127.0.0.1, bounded
by ``anyio.fail_after``; the server programs among them run as subprocesses too, on
asyncio and on trio. `tests/test_docs_examples.py` checks that no page shows Python code
any other way.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import anyws
import anyws.sync
from tests.test_docs_examples import backend, start_server
from tests.test_examples_content import ROOT, TIMEOUT, http_get, load, uri
from tests.test_proxy import http_proxy


if TYPE_CHECKING:
    import trustme


__all__ = ["backend"]  # a fixture, imported to be used here


def alice() -> dict[str, str]:
    """The ``Authorization`` header of the pages' user, ``alice:s3cr3t``."""
    return {"Authorization": "Basic " + base64.b64encode(b"alice:s3cr3t").decode()}


# docs/howto/authentication.md ------------------------------------------------------------


async def test_authentication() -> None:
    example = load("howto/authentication.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            example.handler, "127.0.0.1", 0, process_request=example.auth
        ) as server:
            assert await example.client(uri(server)) == "hello alice"
            with pytest.raises(anyws.InvalidStatus) as exc_info:
                async with anyws.connect(uri(server)):
                    pass
    response = exc_info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="my server", charset="UTF-8"'
    assert response.body == b"Missing credentials\n"


async def test_authentication_with_health_checks() -> None:
    example = load("howto/authentication.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            example.handler, "127.0.0.1", 0, process_request=example.process_request
        ) as server:
            status, _, body = await http_get(server.port, "/healthz")
            assert (status, body) == ("HTTP/1.1 200 OK", "OK\n")
            status, _, body = await http_get(server.port, "/")
            assert (status, body) == ("HTTP/1.1 401 Unauthorized", "Missing credentials\n")
            assert await example.client(uri(server)) == "hello alice"


def test_authentication_program(backend: str) -> None:
    example = load("howto/authentication.py")
    with start_server("howto/authentication.py", backend=backend) as (_, server_uri):
        assert server_uri.startswith("ws://localhost:")
        assert anyio.run(example.client, server_uri, backend=backend) == "hello alice"


# docs/howto/broadcast.md -----------------------------------------------------------------


async def test_broadcast() -> None:
    example = load("howto/broadcast.py")
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(example.handler, "127.0.0.1", 0) as server,
            anyws.connect(uri(server)) as alice,
            anyws.connect(uri(server)) as bob,
        ):
            await alice.send("hi")
            assert await alice.recv() == "hi"
            assert await bob.recv() == "hi"
            await example.send_in_a_loop(server, "one by one")
            example.send_update(list(server.connections), "at once")
            for client in [alice, bob]:
                assert [await client.recv(), await client.recv()] == ["one by one", "at once"]


async def test_broadcast_drops_a_slow_client() -> None:
    """``max_buffer=256 * 1024``: a client that doesn't read is closed with 1013."""
    example = load("howto/broadcast.py")
    with anyio.fail_after(TIMEOUT):
        async with (
            # The client reads nothing: no closing handshake; wait 0.1 s for it, not 10.
            anyws.serve(
                example.handler, "127.0.0.1", 0, compression=None, close_timeout=0.1
            ) as server,
            anyws.connect(uri(server), compression=None, max_size=None) as client,
        ):
            await client.send("hi")  # the server counts it among its connections
            assert await client.recv() == "hi"
            (connection,) = server.connections
            while connection.close_code is None:  # the client reads nothing meanwhile
                example.send_update([connection], "x" * 64 * 1024)
                await anyio.lowlevel.checkpoint()  # let the writer task run
            await connection.wait_closed()
            with pytest.raises(anyws.ConnectionClosedError) as exc_info:
                await connection.send("too late")
    assert str(exc_info.value).startswith("sent 1013 (try again later) slow consumer; ")


# docs/howto/client-connections.md --------------------------------------------------------


async def test_credentials_in_the_uri(
    ca: trustme.CA,
    server_ssl_context: ssl.SSLContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load("howto/client_connections.py")
    # The example's wss:// uses the default SSL context: make it trust the tests' CA.
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    headers = []

    async def handler(connection: anyws.ServerConnection) -> None:
        assert connection.request is not None
        headers.append(connection.request.headers["Authorization"])
        await connection.send(connection.request.path)

    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(handler, "127.0.0.1", 0, ssl=server_ssl_context) as server:
            assert await example.feed(f"localhost:{server.port}") == "/feed"
    assert headers == ["Basic " + base64.b64encode(b"alice:s@cret").decode()]


# docs/howto/proxies.md -------------------------------------------------------------------


async def test_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("howto/proxies.py")
    # A proxy in the environment that refuses connections (a socket bound but not
    # listening): proxy=None doesn't use it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("ws_proxy", f"http://127.0.0.1:{closed.getsockname()[1]}")
        await no_proxy(example)


async def no_proxy(example: types.ModuleType) -> None:
    echo = load("logging_setup.py").echo
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(echo, "localhost", 0) as server:
            assert await example.direct(server.port) == "hello"
            with pytest.raises(OSError):
                async with anyws.connect(uri(server)):
                    pass


async def test_http_proxy() -> None:
    example = load("howto/proxies.py")
    echo = load("logging_setup.py").echo
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(echo, "127.0.0.1", 0) as server,
            http_proxy(credentials=("user", "secret")) as proxy,
        ):
            assert await example.through(uri(server), f"127.0.0.1:{proxy.port}") == "hello"
            port = server.port
    (request,) = proxy.requests
    assert f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode() in request
    assert b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n" in request


# docs/howto/reconnect.md -----------------------------------------------------------------


async def test_reconnect_aclosing() -> None:
    example = load("howto/reconnect.py")
    greet = load("topics/concurrency.py").handler
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(greet, "127.0.0.1", 0) as server:
            assert await example.first_message(uri(server)) == "hello"


async def test_reconnect_retries_429() -> None:
    example = load("howto/reconnect.py")
    greet = load("topics/concurrency.py").handler
    answers: list[int] = []

    def rate_limit(
        connection: anyws.ServerConnection, request: anyws.Request
    ) -> anyws.Response | None:
        if len(answers) < 2:
            answers.append(429)
            return connection.respond(429, "Too Many Requests\n")
        answers.append(101)
        return None

    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(greet, "127.0.0.1", 0, process_request=rate_limit) as server:
            message = await example.patient(
                uri(server), backoff_initial_delay=0, backoff_min_delay=0.01
            )
    assert (message, answers) == ("hello", [429, 429, 101])
    # Anything else, the default decides: an invalid URI is raised, a refusal retried.
    error = anyws.InvalidURI("http://example.com/", "scheme isn't ws or wss")
    assert example.process_exception(error) is error
    assert example.process_exception(ConnectionRefusedError()) is None


# docs/howto/routing.md -------------------------------------------------------------------


async def test_routing() -> None:
    example = load("howto/routing.py")
    with anyio.fail_after(TIMEOUT):
        async with example.serve(0) as server:
            for path, greeting in [("/public", "no password needed here")]:
                async with anyws.connect(uri(server, path)) as websocket:
                    assert await websocket.recv() == greeting
            for path, greeting in [("/", "welcome to the lobby"), ("/rooms/red", "welcome to red")]:
                with pytest.raises(anyws.InvalidStatus, match="HTTP 401"):
                    async with anyws.connect(uri(server, path)):
                        pass
                async with anyws.connect(uri(server, path), additional_headers=alice()) as ws:
                    assert await ws.recv() == greeting
            # Unknown paths: 401 too, so that they can't be told from known ones.
            status, _, _ = await http_get(server.port, "/nowhere")
            assert status == "HTTP/1.1 401 Unauthorized"


def test_routing_program(backend: str) -> None:
    async def visit(server_uri: str) -> list[anyws.Data]:
        with anyio.fail_after(TIMEOUT):
            greetings = []
            for path in ["", "rooms/red"]:
                async with anyws.connect(server_uri + path) as websocket:
                    greetings.append(await websocket.recv())
            with pytest.raises(anyws.InvalidStatus, match="HTTP 404"):
                async with anyws.connect(server_uri + "rooms"):
                    pass
            return greetings

    with start_server("howto/routing.py", backend=backend) as (_, server_uri):
        assert anyio.run(visit, server_uri, backend=backend) == [
            "welcome to the lobby",
            "welcome to red",
        ]


# docs/howto/server-deployment.md ---------------------------------------------------------


def ipv6() -> bool:
    """Whether ::1 can be bound here."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6(), reason="no IPv6 loopback")
async def test_several_listeners(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("howto/server_deployment.py")
    with anyio.fail_after(TIMEOUT):
        sockets = await example.two_addresses(0)
    port = sockets[0][1]
    assert sockets == [("127.0.0.1", port), ("::1", port)]
    assert capsys.readouterr().out == f"[('127.0.0.1', {port}), ('::1', {port})]\n"


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
async def test_reuse_port(caplog: pytest.LogCaptureFixture) -> None:
    example = load("howto/server_deployment.py")
    caplog.set_level(logging.INFO, "anyws.server")
    with anyio.fail_after(TIMEOUT), listening(2) as both_bound:
        # Another process's server, bound first; the example's binds the same port.
        async with (
            anyws.serve(example.handler, "0.0.0.0", 0, reuse_port=True) as other,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(example.main, other.port)
            await both_bound.wait()
            for _ in range(4):  # the kernel spreads these between both servers
                async with anyws.connect(uri(other)) as websocket:
                    assert await websocket.recv() == "hello from 127.0.0.1"
            tg.cancel_scope.cancel()
            port = other.port
    bound = [r.getMessage() for r in caplog.records if "listening" in r.getMessage()]
    assert bound == [f"server listening on 0.0.0.0:{port}"] * 2


async def test_quiet_health_checks(caplog: pytest.LogCaptureFixture) -> None:
    example = load("howto/server_deployment.py")
    health = load("logging_setup.py").health_check
    logger = logging.getLogger("anyws.server")
    caplog.set_level(logging.INFO, "anyws.server")
    example.quiet_health_checks()
    try:
        with anyio.fail_after(TIMEOUT):
            async with anyws.serve(
                example.handler, "127.0.0.1", 0, process_request=health
            ) as server:
                caplog.clear()
                assert (await http_get(server.port, "/healthz"))[0] == "HTTP/1.1 200 OK"
                assert (await http_get(server.port, "/"))[0] == "HTTP/1.1 426 Upgrade Required"
    finally:
        for log_filter in list(logger.filters):
            if isinstance(log_filter, example.NoHealthChecks):
                logger.removeFilter(log_filter)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m.partition(" for ")[0] for m in messages] == [
        "connection rejected (426 Upgrade Required)",
        "server closing",
        "server closed",
    ]


# docs/howto/sync.md ----------------------------------------------------------------------


def test_sync(backend: str) -> None:
    example = load("howto/sync.py")
    with start_server("howto/sync.py", backend=backend) as (_, server_uri):
        assert example.client(server_uri, backend) == "hello"


def test_sync_routes(backend: str) -> None:
    """The page's routes: echo, a room that broadcasts to everyone, 404 elsewhere."""
    example = load("howto/sync.py")
    with example.routes(0, backend) as server:
        base = f"ws://127.0.0.1:{server.port}"
        with anyws.sync.connect(f"{base}/echo", backend=backend) as ws:
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
        with anyws.sync.connect(f"{base}/rooms/lobby", backend=backend) as alice:
            # Getting it back means that the server counts alice among its connections.
            alice.send("alice here")
            assert alice.recv(timeout=TIMEOUT) == "lobby: alice here"
            with anyws.sync.connect(f"{base}/rooms/lobby", backend=backend) as bob:
                bob.send("bob here")
                assert bob.recv(timeout=TIMEOUT) == "lobby: bob here"
                assert alice.recv(timeout=TIMEOUT) == "lobby: bob here"
        with pytest.raises(anyws.InvalidStatus) as excinfo:
            anyws.sync.connect(f"{base}/nowhere", backend=backend)
        assert excinfo.value.response.status_code == 404


@pytest.mark.skipif(sys.platform == "win32", reason="no Unix sockets on Windows")
def test_sync_unix(backend: str, tmp_path: Path) -> None:
    example = load("howto/sync.py")
    path = tmp_path / "ws.sock"
    assert example.unix(str(path), backend) == "over a Unix socket"
    assert not path.exists()  # removed when the server shut down


# docs/howto/testing.md and docs/topics/keepalive.md: trio's MockClock -------------------


def test_mock_clock() -> None:
    """The tests of "testing/test_mock_clock.py" pass, run as a user would."""
    pytest.importorskip("trio")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "examples/testing/test_mock_clock.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b1 passed\b", result.stdout), result.stdout


# docs/howto/tls.md -----------------------------------------------------------------------


async def test_trustme_contexts() -> None:
    pytest.importorskip("trustme")
    example = load("howto/tls.py")
    server_context, client_context = example.contexts()
    echo = load("logging_setup.py").echo
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(echo, "127.0.0.1", 0, ssl=server_context) as server,
            anyws.connect(uri(server, scheme="wss"), ssl=client_context) as websocket,
        ):
            await websocket.send("over TLS")
            assert await websocket.recv() == "over TLS"


async def test_trustme_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trustme")
    example, tls = load("howto/tls.py"), load("tls/server.py")
    monkeypatch.chdir(tmp_path)
    example.pem_files()
    # The files are what the TLS examples read.
    server_context = tls.server_context("cert.pem", "key.pem")
    client_context = load("tls/client.py").client_context("ca.pem")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(tls.echo, "127.0.0.1", 0, ssl=server_context) as server:
            reply = await load("tls/client.py").client(
                uri(server, scheme="wss", host="localhost"), client_context
            )
    assert reply == "hello over TLS"


# docs/howto/unix-sockets.md --------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no Unix sockets on Windows")
async def test_unix_sockets(tmp_path: Path) -> None:
    example = load("howto/unix_sockets.py")
    path = tmp_path / "ws.sock"
    with anyio.fail_after(TIMEOUT), listening() as bound:
        async with anyio.create_task_group() as tg:
            tg.start_soon(example.main, str(path))
            await bound.wait()
            assert path.stat().st_mode & 0o777 == 0o660
            assert await example.clients(str(path)) == ["/: hello", "/room/1: hello"]
            tg.cancel_scope.cancel()
    assert not path.exists()  # removed when the server closed


@contextlib.contextmanager
def listening(count: int = 1) -> Iterator[anyio.Event]:
    """An event set once servers logged ``count`` times that they listen (once bound)."""
    event = anyio.Event()
    seen = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("server listening on "):
                seen.append(record)
                if len(seen) >= count:
                    event.set()

    logger = logging.getLogger("anyws.server")
    handler, level = Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield event
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# docs/topics/asgi.md ---------------------------------------------------------------------


async def test_asgi_lifespan_and_client(capsys: pytest.CaptureFixture[str]) -> None:
    """The lifespan serves while the app runs; the client asks it; leaving closes with 1001."""
    example = load("topics/asgi.py")
    codes: list[int | None] = []

    async def client(server_uri: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with anyws.connect(server_uri) as websocket:
            task_status.started()
            with pytest.raises(anyws.ConnectionClosedOK):
                await websocket.recv()
            codes.append(websocket.close_code)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg, example.lifespan(object(), port=0):
            [server_uri] = re.findall(r"ws://\S+", capsys.readouterr().out)
            assert await example.ask_upstream(server_uri, "ping?") == "ping?"
            await tg.start(client, server_uri)
    assert codes == [1001]


# docs/topics/concurrency.md --------------------------------------------------------------


async def test_server_in_my_task_group() -> None:
    example = load("topics/concurrency.py")
    with anyio.fail_after(TIMEOUT):
        assert await example.in_my_task_group() == "hello"


# docs/topics/memory.md -------------------------------------------------------------------


async def test_no_context_takeover() -> None:
    example = load("topics/memory.py")
    with anyio.fail_after(TIMEOUT):
        async with (
            example.serve("127.0.0.1", 0) as server,
            anyws.connect(uri(server)) as websocket,
        ):
            await websocket.send("compressed")
            assert await websocket.recv() == "compressed"
            assert websocket.response is not None
            assert websocket.response.headers["Sec-WebSocket-Extensions"] == (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            )


# docs/faq.md: the quoted tracebacks ---------------------------------------------------------

#: A frame of anyws in a traceback: file, function, and the line of code under it.
ANYWS_FRAME = re.compile(r'File "[^"\n]*?/(anyws/\S+\.py)", line \d+, in (\w+)\n +(\S[^\n]*)')


async def test_faq_tracebacks_are_real() -> None:
    """The anyws frames that the FAQ quotes are in the traceback users get today.

    Line numbers aside: they move with every change of the file.
    """
    example = load("faq/lost_tcp.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(example.handler, "127.0.0.1", 0) as server:
            exc = await example.client(uri(server))
    real = set(ANYWS_FRAME.findall("".join(traceback.format_exception(exc))))
    # The tracebacks of a lost connection: those that end with ConnectionClosedError.
    faq = (ROOT / "docs" / "faq.md").read_text()
    blocks = re.findall(r"^```text\n(.*?)^```$", faq, re.S | re.M)
    closed = [b for b in blocks if "\nanyws.exceptions.ConnectionClosedError: " in b]
    quoted = {frame for block in closed for frame in ANYWS_FRAME.findall(block)}
    assert quoted, "no anyws frame quoted in docs/faq.md"
    assert quoted <= real, f"frames quoted in docs/faq.md that aren't real: {quoted - real}"


# docs/howto/metrics.md -------------------------------------------------------------------


def metric_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("anyws_")]


async def test_metrics() -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client.registry import CollectorRegistry

    example = load("howto/metrics.py")
    registry = CollectorRegistry()
    with anyio.fail_after(TIMEOUT):
        async with example.metrics_endpoint(registry, 0) as server:
            registry.register(example.ServerCollector(server))
            async with anyws.connect(uri(server)) as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
                status, headers, body = await http_get(server.port, "/metrics")
                sent, received = websocket.protocol.bytes_sent, websocket.protocol.bytes_received
            assert status == "HTTP/1.1 200 OK"
            assert headers["content-type"].startswith("text/plain; version=")
            assert metric_lines(body) == [
                "anyws_connections 1.0",
                'anyws_handshakes_total{outcome="accepted",status="101"} 1.0',
                'anyws_handshakes_total{outcome="failed",status=""} 0.0',
                'anyws_messages_total{direction="received"} 1.0',
                'anyws_messages_total{direction="sent"} 1.0',
                f'anyws_transferred_bytes_total{{direction="received"}} {sent:.1f}',
                f'anyws_transferred_bytes_total{{direction="sent"}} {received:.1f}',
            ]
            # The client closed (1000); the first scrape counts as a 200.
            while server.connections:
                await anyio.lowlevel.checkpoint()
            _, _, body = await http_get(server.port, "/metrics")
            lines = metric_lines(body)
            assert "anyws_connections 0.0" in lines
            assert 'anyws_handshakes_total{outcome="rejected",status="200"} 1.0' in lines
            assert 'anyws_closes_total{code="1000"} 1.0' in lines


def test_metrics_program(backend: str) -> None:
    pytest.importorskip("prometheus_client")
    with start_server("howto/metrics.py", backend=backend) as (_, metrics_uri):
        port = int(metrics_uri.split(":")[2].split("/")[0])
        status, _, body = anyio.run(http_get, port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        assert "anyws_connections 0.0" in metric_lines(body)
