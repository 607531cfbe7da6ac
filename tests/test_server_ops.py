"""Running a server in production: graceful shutdown, several listeners, reuse_port, logs.

Real sockets on 127.0.0.1 (and ::1 where the machine has IPv6), on every backend. Each
test body runs under ``anyio.fail_after(TIMEOUT)``; tasks synchronise with events
(log records included), never with sleeps.
"""

from __future__ import annotations

import errno
import logging
import re
import signal
import socket
import ssl
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.streams.text
import pytest

from anyws import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidStatus,
    ProtocolError,
    Request,
    Response,
    Server,
    ServerConnection,
    connect,
    serve,
)
from tests.conftest import MS, unnamed


TIMEOUT = 10_000 * MS

SERVER_LOGGER = "anyws.server"

PEER = r"127\.0\.0\.1:\d+"


def uri(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The server's records, but for the lifecycle lines (listening, closing, closed)."""
    return [
        record
        for record in caplog.records
        if record.name == SERVER_LOGGER
        and not record.getMessage().startswith(("server listening on", "server clos"))
        # The sans-I/O layer's own debug trace: frames, headers, states.
        and unnamed(record.getMessage())[:2] not in {"< ", "> ", "= ", "! "}
    ]


def lifecycle(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == SERVER_LOGGER and record.getMessage().startswith("server clos")
    ]


@contextmanager
def on_log(prefix: str) -> Iterator[anyio.Event]:
    """An event set when the server logs a message starting with ``prefix``."""
    event = anyio.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith(prefix):
                event.set()

    handler = Handler()
    logger = logging.getLogger(SERVER_LOGGER)
    logger.addHandler(handler)
    try:
        yield event
    finally:
        logger.removeHandler(handler)


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and EOF over TCP; return everything received until EOF."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        if data:
            await stream.send(data)
        await stream.send_eof()
        received = b""
        try:
            while True:
                received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return received


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# Graceful shutdown -------------------------------------------------------------


async def test_aclose_closes_with_code_and_reason_and_returns_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    opened = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await ws.recv()
        except ConnectionClosedError:  # 1012 isn't a normal closure
            outcome.append("closed")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            await opened.wait()
            assert await server.aclose(1012, "restarting") == 0
            assert outcome == ["closed"]  # aclose() waited for the handler
            assert server.connections == set()
            with pytest.raises(ConnectionClosedError) as excinfo:
                await ws.recv()
            assert str(excinfo.value) == (
                "received 1012 (service restart) restarting; then sent 1012 (service restart) "
                "restarting"
            )
            # Nothing listens any more.
            with pytest.raises(OSError):
                async with connect(uri(server)):
                    pytest.fail("connected")
            # Idempotent.
            assert await server.aclose() == 0
    assert lifecycle(caplog) == [(logging.INFO, "server closing"), (logging.INFO, "server closed")]
    assert server_records(caplog) == []


async def test_aclose_cancels_handlers_after_grace(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    grace = 200 * MS
    opened: list[anyio.Event] = [anyio.Event(), anyio.Event(), anyio.Event()]
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        index = int(ws.request.path[1:]) if ws.request else 0
        opened[index].set()
        if index == 2:
            await ws.wait_closed()  # this one leaves in time
            outcome.append("returned")
            return
        try:
            await anyio.sleep_forever()  # ignores the close
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler, "127.0.0.1", 0, close_timeout=TIMEOUT) as server,
            connect(uri(server, "/0")) as ws0,
            connect(uri(server, "/1")) as ws1,
            connect(uri(server, "/2")) as ws2,
        ):
            for event in opened:
                await event.wait()
            start = anyio.current_time()
            cancelled = await server.aclose(grace=grace)
            elapsed = anyio.current_time() - start
            for ws in (ws0, ws1, ws2):
                await ws.wait_closed()
                assert ws.close_code == 1001
    assert cancelled == 2
    assert sorted(outcome) == ["cancelled", "cancelled", "returned"]
    assert grace * 0.9 <= elapsed < TIMEOUT / 2
    [record] = server_records(caplog)
    assert (record.levelno, record.getMessage()) == (
        logging.WARNING,
        f"cancelled 2 connections still open after {grace:g} s",
    )
    assert record.exc_info is None
    assert lifecycle(caplog) == [(logging.INFO, "server closing"), (logging.INFO, "server closed")]


async def test_concurrent_aclose_calls_return_the_same_count() -> None:
    opened = anyio.Event()
    results: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        await anyio.sleep_forever()

    async def close(server: Server) -> None:
        results.append(await server.aclose(grace=100 * MS))

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)):
            await opened.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(close, server)
                tg.start_soon(close, server)
            await server.close()  # websockets' spelling: also idempotent
    assert results == [1, 1]


async def test_cancelled_aclose_leaves_server_closed_and_exit_finishes() -> None:
    opened = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await anyio.sleep_forever()  # ignores the close
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler, "127.0.0.1", 0, close_timeout=100 * MS) as server,
            connect(uri(server)) as ws,
        ):
            await opened.wait()
            with anyio.CancelScope() as scope:

                async def cancel_when_closed() -> None:
                    await ws.wait_closed()  # the server's close frame came
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_when_closed)
                    await server.aclose(grace=TIMEOUT)  # waits for the handler
            assert scope.cancelled_caught
            assert ws.close_code == 1001
            # Stopped accepting all the same.
            with pytest.raises(OSError):
                async with connect(uri(server)):
                    pytest.fail("connected")
            assert outcome == []
        # Leaving the block ran the shutdown again, with close_timeout.
        assert outcome == ["cancelled"]


async def test_aclose_rejects_invalid_code_before_closing() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            with pytest.raises(ProtocolError) as excinfo:
                await server.aclose(1005)
            assert str(excinfo.value) == "invalid status code: 1005"
            with pytest.raises(ProtocolError) as excinfo:
                await server.aclose(1000, "x" * 124)
            assert str(excinfo.value) == "close reason too long"
            # Still serving.
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_close_without_closing_connections() -> None:
    opened = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler, "127.0.0.1", 0, close_timeout=100 * MS) as server,
            connect(uri(server)) as ws,
        ):
            await opened.wait()
            await server.close(close_connections=False)
            # No close frame was sent: the handler was cancelled, and then its
            # connection closed with 1011 (its task was cancelled).
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert outcome == ["cancelled"]


@pytest.mark.parametrize("how", ["serve method", "serve_forever task", "serve block"])
async def test_cancellation_shuts_down_gracefully(how: str) -> None:
    """Cancelling the server's task closes connections with 1001; handlers aren't cancelled."""
    opened = anyio.Event()
    handler_outcome: list[str] = []
    client_outcome: list[ConnectionClosed] = []
    servers: list[Server] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await ws.recv()
        except ConnectionClosedOK:
            await anyio.lowlevel.checkpoint()  # not cancelled
            handler_outcome.append("closed")

    async def client(server: Server) -> None:
        async with connect(uri(server)) as ws:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                client_outcome.append(exc)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as tg:
                if how == "serve method":
                    server = await tg.start(serve(handler, "127.0.0.1", 0).serve)
                    servers.append(server)
                else:

                    async def run(*, task_status: anyio.abc.TaskStatus[Server]) -> None:
                        async with serve(handler, "127.0.0.1", 0) as server:
                            servers.append(server)
                            task_status.started(server)
                            if how == "serve_forever task":
                                async with anyio.create_task_group() as inner:
                                    inner.start_soon(server.serve_forever)
                                    await anyio.sleep_forever()
                            else:
                                await anyio.sleep_forever()

                    server = await tg.start(run)
                outer.start_soon(client, server)
                await opened.wait()
                tg.cancel_scope.cancel()
            assert handler_outcome == ["closed"]
    [exc] = client_outcome
    assert str(exc) == "received 1001 (going away); then sent 1001 (going away)"
    assert servers[0].listeners  # and they are closed:
    with pytest.raises(OSError):
        async with connect(uri(servers[0])):
            pytest.fail("connected")


async def test_cancelled_serve_forever_cancels_handlers_after_close_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    close_timeout = 100 * MS
    opened = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as tg:
                server = await tg.start(
                    serve(handler, "127.0.0.1", 0, close_timeout=close_timeout).serve
                )
                client_done = anyio.Event()

                async def client() -> None:
                    async with connect(uri(server)) as ws:
                        await ws.wait_closed()
                    client_done.set()

                outer.start_soon(client)
                await opened.wait()
                start = anyio.current_time()
                tg.cancel_scope.cancel()
            elapsed = anyio.current_time() - start
            await client_done.wait()
    assert outcome == ["cancelled"]
    assert close_timeout * 0.9 <= elapsed < TIMEOUT / 2
    [record] = server_records(caplog)
    assert (record.levelno, record.getMessage()) == (
        logging.WARNING,
        f"cancelled 1 connection still open after {close_timeout:g} s",
    )


async def test_handshake_during_shutdown_gets_503(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    in_process_request = anyio.Event()

    with on_log("server closing") as closing:

        async def process_request(ws: ServerConnection, request: Request) -> Response | None:
            in_process_request.set()
            await closing.wait()
            return None  # accept... but the server is shutting down now

        async def client(server: Server) -> None:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(uri(server)):
                    pytest.fail("connected")
            assert excinfo.value.response.status_code == 503
            assert excinfo.value.response.body == b"Server is shutting down.\n"

        with anyio.fail_after(TIMEOUT):
            async with (
                serve(echo, "127.0.0.1", 0, process_request=process_request) as server,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(client, server)
                await in_process_request.wait()
                assert await server.aclose() == 0
    [record] = server_records(caplog)
    assert record.levelno == logging.INFO
    assert re.fullmatch(
        rf"connection rejected \(503 Service Unavailable\) for / from {PEER}: "
        r"server is shutting down",
        record.getMessage(),
    )


# Several listeners, reuse_port ---------------------------------------------------


async def test_port_and_sockets_stay_readable_after_close() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            port, sockets = server.port, server.sockets
            assert sockets == [("127.0.0.1", port)]
    # The listening sockets are closed: their addresses are still known.
    assert (server.port, server.sockets) == (port, sockets)
    with pytest.raises(OSError):
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT):
            pytest.fail("connected")


async def test_serve_on_a_list_of_hosts_shares_the_port() -> None:
    if not ipv6_available():
        pytest.skip("no IPv6 on this machine")
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, ["127.0.0.1", "::1"], 0) as server:
            port = server.port
            assert [address[:2] for address in server.sockets] == [
                ("127.0.0.1", port),
                ("::1", port),
            ]
            for host in ("127.0.0.1", "[::1]"):
                async with connect(f"ws://{host}:{port}/") as ws:
                    await ws.send(host)
                    assert await ws.recv() == host


async def test_serve_on_a_list_of_hosts_with_a_port(free_tcp_port: int) -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, ("127.0.0.1",), free_tcp_port) as server:
            assert [address[:2] for address in server.sockets] == [("127.0.0.1", free_tcp_port)]


async def test_serve_on_all_interfaces() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, None, 0) as server:
            port = server.port
            assert server.sockets
            assert {address[1] for address in server.sockets} == {port}
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_second_host_failing_closes_the_first() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as taken:
            port = taken.port
            with socket.socket() as probe:  # 127.0.0.2 is loopback on Linux only
                try:
                    probe.bind(("127.0.0.2", 0))
                except OSError:
                    pytest.skip("127.0.0.2 isn't a local address here")
            server = serve(echo, ["127.0.0.2", "127.0.0.1"], port)
            with pytest.raises(OSError) as excinfo:
                async with server:
                    pytest.fail("bound")
            assert excinfo.value.errno == errno.EADDRINUSE
            assert server.server.listeners == []
            # 127.0.0.2:port was released.
            async with serve(echo, "127.0.0.2", port):
                pass


def test_empty_host_list() -> None:
    with pytest.raises(ValueError) as excinfo:
        anyio.run(_enter_empty)
    assert str(excinfo.value) == "serve() received an empty list of hosts"


async def _enter_empty() -> None:
    async with serve(echo, [], 0):
        pass  # pragma: no cover


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
async def test_reuse_port_lets_two_servers_share_a_port() -> None:
    def named(name: str) -> Any:
        async def handler(ws: ServerConnection) -> None:
            await ws.send(name)

        return handler

    with anyio.fail_after(TIMEOUT):
        async with serve(named("a"), "127.0.0.1", 0, reuse_port=True) as a:
            # Without reuse_port, the port is taken.
            with pytest.raises(OSError) as excinfo:
                async with serve(echo, "127.0.0.1", a.port):
                    pytest.fail("bound")
            assert excinfo.value.errno == errno.EADDRINUSE
            async with serve(named("b"), "127.0.0.1", a.port, reuse_port=True) as b:
                assert b.port == a.port
                if not sys.platform.startswith("linux"):
                    return  # the BSDs and macOS don't spread connections among sockets
                # Linux spreads connections by a hash of the client's address: with a
                # new source port each time, both servers soon get one.
                seen: set[str] = set()
                while seen != {"a", "b"}:
                    async with connect(uri(a)) as ws:
                        seen.add(str(await ws.recv()))


# Logs -------------------------------------------------------------------------------


def health_check(ws: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return ws.respond(200, "OK\n")
    return None


async def test_health_check_logs_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=health_check) as server:
            with pytest.raises(InvalidStatus):
                async with connect(uri(server, "/healthz")):
                    pytest.fail("connected")
    [record] = server_records(caplog)
    assert record.levelno == logging.INFO
    assert re.fullmatch(
        rf"HTTP response sent \(200 OK\) for /healthz from {PEER}", record.getMessage()
    )
    assert record.exc_info is None


@pytest.mark.parametrize(
    ("request_bytes", "level", "message"),
    [
        pytest.param(
            b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n",
            logging.INFO,
            rf"connection rejected \(426 Upgrade Required\) for /chat from {PEER}: "
            r"missing Connection header",
            id="not an upgrade",
        ),
        pytest.param(
            b"BREW /pot HTCPCP/1.0\r\n\r\n",
            logging.INFO,
            rf"connection rejected \(400 Bad Request\) from {PEER}: did not receive a valid "
            r"HTTP request: invalid HTTP request line: b'BREW /pot HTCPCP/1\.0'",
            id="bad request",
        ),
        pytest.param(
            b"",
            logging.DEBUG,
            rf"opening handshake failed from {PEER}: did not receive a valid HTTP request: "
            r"connection closed while reading HTTP request line",
            id="EOF",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: localhost\r\n",
            logging.DEBUG,
            rf"opening handshake failed from {PEER}: did not receive a valid HTTP request: "
            r"connection closed while reading HTTP headers",
            id="EOF in headers",
        ),
    ],
)
async def test_failed_handshake_logs_why_once(
    caplog: pytest.LogCaptureFixture, request_bytes: bytes, level: int, message: str
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            await raw_exchange(server.port, request_bytes)
    [record] = server_records(caplog)
    assert record.levelno == level
    assert re.fullmatch(message, record.getMessage()), record.getMessage()
    assert record.exc_info is None


async def test_reset_during_handshake_logs_the_reset(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    with (
        on_log("= connection is CONNECTING") as started,  # the debug trace
        on_log("opening handshake failed") as failed,
        anyio.fail_after(TIMEOUT),
    ):
        async with serve(echo, "127.0.0.1", 0) as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(b"GET / HTTP/1.1\r\n")
            await started.wait()  # the server noted the peer's address
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await anyio.aclose_forcefully(stream)  # RST
            await failed.wait()
    [record] = server_records(caplog)
    assert record.levelno == logging.DEBUG
    assert re.fullmatch(
        rf"opening handshake failed from {PEER}: \[Errno {errno.ECONNRESET}\] .+",
        record.getMessage(),
    ), record.getMessage()
    assert record.exc_info is None


async def test_handshake_timeout_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    with on_log("opening handshake failed") as failed, anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, open_timeout=50 * MS) as server,
            await anyio.connect_tcp("127.0.0.1", server.port),
        ):
            await failed.wait()  # say nothing until the server gives up
    [record] = server_records(caplog)
    assert record.levelno == logging.DEBUG
    assert re.fullmatch(rf"opening handshake failed from {PEER}: timed out", record.getMessage())
    assert record.exc_info is None


async def test_tls_failure_logs_once(
    caplog: pytest.LogCaptureFixture, server_ssl_context: ssl.SSLContext
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server:
            # Plain HTTP to a TLS port.
            await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    [record] = server_records(caplog)
    assert record.levelno == logging.DEBUG
    assert re.fullmatch(rf"TLS handshake failed from {PEER}: .+", record.getMessage())
    assert "Error()" not in record.getMessage()  # says why, not just the wrapper's type
    assert record.exc_info is None


async def test_process_request_failure_logs_one_error_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        raise KeyError("oops")

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus):
                async with connect(uri(server)):
                    pytest.fail("connected")
    [record] = server_records(caplog)
    assert (record.levelno, record.getMessage()) == (logging.ERROR, "opening handshake failed")
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


async def test_successful_connection_logs_nothing_above_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
    assert server_records(caplog) == []


# The example -----------------------------------------------------------------------

EXAMPLE = Path(__file__).parent.parent / "examples" / "graceful_shutdown.py"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
async def test_graceful_shutdown_example(anyio_backend_name: str) -> None:
    """examples/graceful_shutdown.py closes with 1012 on SIGTERM, then exits."""
    with anyio.fail_after(TIMEOUT):
        async with await anyio.open_process(
            [sys.executable, str(EXAMPLE), "0", anyio_backend_name]
        ) as process:
            assert process.stdout is not None
            lines = anyio.streams.text.TextReceiveStream(process.stdout)
            output = ""
            while "\n" not in output:
                output += await lines.receive()
            match = re.fullmatch(r"listening on port (\d+)\n", output)
            assert match is not None, output
            async with connect(f"ws://127.0.0.1:{match[1]}/") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosedError) as excinfo:
                    await ws.recv()
                assert str(excinfo.value) == (
                    "received 1012 (service restart); then sent 1012 (service restart)"
                )
            async for chunk in lines:
                output += chunk
            assert await process.wait() == 0
    assert output.endswith("stopped; 0 handler(s) cancelled\n")


async def test_bug_in_connection_task_costs_one_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    calls: list[int] = []

    def create_connection(*args: Any, **kwargs: Any) -> ServerConnection:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bug")
        return ServerConnection(*args, **kwargs)

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, create_connection=create_connection) as server:
            with pytest.raises(InvalidMessage):  # the connection was closed
                async with connect(uri(server)):
                    pytest.fail("connected")
            # The server still serves.
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
    [record] = server_records(caplog)
    assert (record.levelno, record.getMessage()) == (logging.ERROR, "connection task failed")
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError
