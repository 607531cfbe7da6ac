"""`anyws.sync`: the blocking client and server, over real TCP on 127.0.0.1.

These are sync tests: each one runs on every backend through the ``backend`` fixture,
which the event loop threads of `anyws.sync.connect` and `anyws.sync.serve` get as
``backend`` and ``backend_options``. Threads synchronise with `threading.Event` and
`threading.Barrier`, never with sleeps, and every wait is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import logging
import runpy
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

import anyws
from anyws import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    ProtocolError,
    State,
)
from anyws.sync import (
    ClientConnection,
    Server,
    ServerConnection,
    broadcast,
    connect,
    route,
    serve,
    unix_connect,
    unix_serve,
)
from tests.conftest import BACKENDS, MS


#: Bound on each wait, in seconds.
TIMEOUT = 10_000 * MS

SERVER_LOGGER = "anyws.server"

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``backend`` and ``backend_options`` of the event loop threads."""
    name, options = BACKENDS[request.param]()
    return {"backend": name, "backend_options": options}


def uri(server: Server | anyws.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def start_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def wait(event: threading.Event) -> None:
    assert event.wait(TIMEOUT)


def until(portal: anyio.from_thread.BlockingPortal, predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds, checking each time the portal's event loop idles."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline
        portal.call(anyio.wait_all_tasks_blocked)


def backend_source(backend: dict[str, Any]) -> str:
    """``backend`` as Python source, for a script run in a subprocess."""
    if "loop_factory" in backend["backend_options"]:  # uvloop, in another spelling
        return repr({"backend": "asyncio", "backend_options": {"use_uvloop": True}})
    return repr(backend)


def portal_threads() -> list[str]:
    """The event loop threads of anyws.sync that are alive."""
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("anyws sync")]


# Echo -------------------------------------------------------------------------


def test_echo(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server:
        assert isinstance(server, Server)
        assert server.socket.getsockname() == ("127.0.0.1", server.port)
        assert server.fileno() == server.socket.fileno()
        with connect(uri(server), **backend) as ws:
            assert isinstance(ws, ClientConnection)
            assert ws.state is State.OPEN
            assert ws.wait_closed(0) is False
            ws.send("hello")
            assert ws.recv(TIMEOUT) == "hello"
            ws.send(b"\x00\xff")
            assert ws.recv(TIMEOUT) == b"\x00\xff"
            ws.send(["frag", "mented"])
            assert ws.recv(TIMEOUT) == "fragmented"
            ws.send(chunk for chunk in [b"gen", b"erator"])
            assert ws.recv(TIMEOUT) == b"generator"
            ws.send("text")
            assert ws.recv(TIMEOUT, decode=False) == b"text"
            ws.send(b"bytes")
            assert ws.recv(TIMEOUT, decode=True) == "bytes"
            ws.send(b"as text", text=True)
            assert ws.recv(TIMEOUT) == "as text"
            ws.send(["caf", "\xe9"])
            assert [*ws.recv_streaming()] == ["caf\xe9"]  # echo sends messages whole
            assert ws.request is not None
            assert ws.request.path == "/"
            assert ws.response is not None
            assert ws.response.status_code == 101
            assert ws.subprotocol is None
            assert ws.local_address[0] == "127.0.0.1"
            assert ws.remote_address == ("127.0.0.1", server.port)
            [connection] = server.connections
            assert isinstance(connection, ServerConnection)
            assert connection.server is server
            assert connection.remote_address == ws.local_address
        assert ws.state is State.CLOSED
        assert (ws.close_code, ws.close_reason) == (1000, "")
    assert portal_threads() == []


# unix_serve, unix_connect, route, broadcast ---------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no Unix sockets on Windows")
def test_unix_serve_and_connect(backend: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    with unix_serve(echo, path, mode=0o600, **backend) as server:
        assert path.stat().st_mode & 0o777 == 0o600
        assert server.socket.getsockname() == str(path)
        with pytest.raises(RuntimeError, match="no TCP listener"):
            server.port  # noqa: B018
        with unix_connect(path, "ws://example.com/room", **backend) as ws:
            ws.send("hello")
            assert ws.recv(TIMEOUT) == "hello"
            assert ws.request is not None
            assert ws.request.path == "/room"
            assert ws.request.headers["Host"] == "example.com"
            [connection] = server.connections
            assert connection.request is not None
            assert connection.request.path == "/room"
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        unix_connect(path, **backend)
    assert portal_threads() == []


def test_route(backend: dict[str, Any]) -> None:
    def greet(ws: ServerConnection, name: str) -> None:
        ws.send(f"hello {name}")

    with route({"/echo": echo, "/hello/{name}": greet}, "127.0.0.1", 0, **backend) as server:
        with connect(f"ws://127.0.0.1:{server.port}/hello/caf%C3%A9", **backend) as ws:
            assert ws.recv(TIMEOUT) == "hello café"
        with connect(f"ws://127.0.0.1:{server.port}/echo", **backend) as ws:
            ws.send("echo")
            assert ws.recv(TIMEOUT) == "echo"
        with pytest.raises(InvalidStatus) as excinfo:
            connect(f"ws://127.0.0.1:{server.port}/elsewhere", **backend)
        assert excinfo.value.response.status_code == 404
    assert portal_threads() == []


def test_route_invalid_pattern_leaves_no_thread(backend: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="path must start with /"):
        route({"chat": echo}, "127.0.0.1", 0, **backend)
    assert portal_threads() == []


def test_broadcast_to_server_and_client_connections(backend: dict[str, Any]) -> None:
    received: list[tuple[str, anyws.Data]] = []
    lock = threading.Lock()
    two = threading.Barrier(3, timeout=TIMEOUT)

    def record(ws: ServerConnection) -> None:
        assert ws.request is not None
        two.wait()
        for message in ws:
            with lock:
                received.append((ws.request.path, message))
            ws.send("got it")

    with (
        serve(record, "127.0.0.1", 0, **backend) as server,
        connect(f"ws://127.0.0.1:{server.port}/a", **backend) as a,
        connect(f"ws://127.0.0.1:{server.port}/b", **backend) as b,
    ):
        two.wait()  # both handlers run: both connections are the server's
        # Server connections: one event loop, one round trip.
        broadcast(server.connections, "to clients")
        assert a.recv(TIMEOUT) == "to clients"
        assert b.recv(TIMEOUT) == "to clients"
        # Client connections: an event loop each.
        broadcast([a, b], b"\x00to server", text=False)
        assert a.recv(TIMEOUT) == "got it"
        assert b.recv(TIMEOUT) == "got it"
        assert sorted(received) == [("/a", b"\x00to server"), ("/b", b"\x00to server")]
        b.close()
        broadcast([a, b], "closed ones are skipped")  # b's loop is stopped
        assert a.recv(TIMEOUT) == "got it"
        with pytest.raises(TypeError, match="data must be str or bytes"):
            broadcast([a], 42)  # type: ignore[arg-type]


def test_broadcast_from_the_event_loop_thread_raises(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server, connect(uri(server), **backend) as ws:
        with pytest.raises(RuntimeError, match=r"cannot call broadcast\(\) from the event loop"):
            ws.portal.call(lambda: broadcast([ws], "hi"))
        ws.send("still open")
        assert ws.recv(TIMEOUT) == "still open"


def test_server_stats(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server, connect(uri(server), **backend) as ws:
        ws.send("hello")
        assert ws.recv(TIMEOUT) == "hello"
        stats = server.stats()
        assert isinstance(stats, anyws.ServerStats)
        assert (stats.connections, stats.handshakes_accepted) == (1, 1)
        assert (stats.messages_received, stats.messages_sent) == (1, 1)
        assert stats.bytes_received == ws.async_connection.protocol.bytes_sent


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_threads_leave_the_signal_mask_alone(backend: dict[str, Any]) -> None:
    # Threads inherit their creator's signal mask, and so do subprocesses: a handler
    # thread (or a worker the loop started) with SIGTERM blocked would spawn
    # children that ignore SIGTERM.
    masks: list[set[signal.Signals]] = []

    def handler(ws: ServerConnection) -> None:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        echo(ws)

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        ws.send("hello")
        assert ws.recv(TIMEOUT) == "hello"
    assert masks == [set()]


def test_iteration_ends_on_normal_close(backend: dict[str, Any]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("one")
        ws.send("two")

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        assert list(ws) == ["one", "two"]


def test_subprotocol(backend: dict[str, Any]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(ws.subprotocol or "")

    with (
        serve(handler, "127.0.0.1", 0, subprotocols=["chat"], **backend) as server,
        connect(uri(server), subprotocols=["chat"], **backend) as ws,
    ):
        assert ws.subprotocol == "chat"
        assert ws.recv(TIMEOUT) == "chat"


def test_sync_client_async_server(backend: dict[str, Any]) -> None:
    async def async_echo(ws: anyws.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    with anyio.from_thread.start_blocking_portal(**backend) as portal:
        server_context = portal.wrap_async_context_manager(
            portal.call(lambda: anyws.serve(async_echo, "127.0.0.1", 0))
        )
        with server_context as server, connect(uri(server), **backend) as ws:
            ws.send("hello")
            assert ws.recv(TIMEOUT) == "hello"
            ws.send([b"a", b"b"])
            assert ws.recv(TIMEOUT) == b"ab"


def test_async_client_sync_server(backend: dict[str, Any]) -> None:
    async def client(port: int) -> list[anyws.Data]:
        with anyio.fail_after(TIMEOUT):
            async with anyws.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("hello")
                await ws.send(b"world")
                return [await ws.recv(), await ws.recv()]

    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        anyio.from_thread.start_blocking_portal(**backend) as portal,
    ):
        assert portal.call(client, server.port) == ["hello", b"world"]


# recv ----------------------------------------------------------------------------


def test_recv_timeout_loses_nothing(backend: dict[str, Any]) -> None:
    go = threading.Event()
    sent = threading.Event()

    def handler(ws: ServerConnection) -> None:
        wait(go)
        ws.send("late")
        ws.send("queued")
        sent.set()
        ws.recv(TIMEOUT)  # the client's "done"

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        with pytest.raises(TimeoutError) as excinfo:
            ws.recv(timeout=10 * MS)
        assert str(excinfo.value) == f"timed out in {10 * MS:.1f}s"
        with pytest.raises(TimeoutError, match=r"^timed out in 0\.0s$"):
            ws.recv(timeout=0)
        go.set()
        assert ws.recv(TIMEOUT) == "late"
        # Once "queued" is sent, a ping's pong comes after it on the same TCP
        # stream: when the pong is in, "queued" is queued. (Without waiting for
        # the handler, the server could answer the ping before sending "queued".)
        wait(sent)
        wait(ws.ping())
        assert ws.recv(timeout=0) == "queued"
        ws.send("done")


def test_recv_streaming_stopped_early_leaves_the_rest(backend: dict[str, Any]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(["a", "b", "c"])
        ws.recv(TIMEOUT)

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        fragments = ws.recv_streaming()
        assert next(fragments) == "a"
        fragments.close()
        assert ws.recv(TIMEOUT) == "bc"
        ws.send("done")


def test_concurrent_recv_raises_concurrency_error(backend: dict[str, Any]) -> None:
    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        received: list[anyws.Data] = []
        reader = start_thread(lambda: received.append(ws.recv(TIMEOUT)))
        # Wait until the reader's recv runs in the loop: no sleep, the loop tells.
        until(ws.portal, lambda: ws.async_connection._inbox.busy)
        with pytest.raises(ConcurrencyError) as excinfo:
            ws.recv(TIMEOUT)
        assert str(excinfo.value) == (
            "cannot call recv while another thread is already running recv or recv_streaming"
        )
        ws.send("for the reader")
        join(reader)
        assert received == ["for the reader"]


# Closing and exceptions ------------------------------------------------------------


def test_connection_closed_ok(backend: dict[str, Any]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.close()

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        with pytest.raises(ConnectionClosedOK) as excinfo:
            ws.recv(TIMEOUT)
        assert type(excinfo.value) is ConnectionClosedOK
        assert str(excinfo.value) == "received 1000 (OK); then sent 1000 (OK)"
        with pytest.raises(ConnectionClosedOK) as excinfo:
            ws.send("too late")
        assert str(excinfo.value) == "received 1000 (OK); then sent 1000 (OK)"
        # After close, when the loop is gone: the same exceptions.
        with pytest.raises(ConnectionClosedOK) as excinfo:
            ws.recv()
        assert str(excinfo.value) == "received 1000 (OK); then sent 1000 (OK)"
        with pytest.raises(ConnectionClosedOK):
            ws.ping()
        ws.close()  # idempotent
        assert ws.wait_closed(0)


def test_close_with_code_and_reason(backend: dict[str, Any]) -> None:
    closed: list[str] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv(TIMEOUT)
        except ConnectionClosedOK as exc:
            closed.append(str(exc))
        done.set()

    with serve(handler, "127.0.0.1", 0, **backend) as server:
        ws = connect(uri(server), **backend)  # without "with"
        ws.close(1001, "bye")
        assert (ws.close_code, ws.close_reason) == (1001, "bye")
        wait(done)
    assert closed == ["received 1001 (going away) bye; then sent 1001 (going away) bye"]
    assert portal_threads() == []


def test_handler_exception_closes_1011_and_logs(
    backend: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(ws: ServerConnection) -> None:
        raise ZeroDivisionError("oops")

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        with pytest.raises(ConnectionClosedError) as excinfo:
            ws.recv(TIMEOUT)
        assert type(excinfo.value) is ConnectionClosedError
        assert str(excinfo.value) == (
            "received 1011 (internal error); then sent 1011 (internal error)"
        )
    [record] = [
        record
        for record in caplog.records
        if record.name == SERVER_LOGGER and record.getMessage() == "connection handler failed"
    ]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError
    assert str(record.exc_info[1]) == "oops"


def test_error_in_with_block_closes_1011(backend: dict[str, Any]) -> None:
    closed: list[str] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv(TIMEOUT)
        except ConnectionClosedError as exc:
            closed.append(str(exc))
        done.set()

    with serve(handler, "127.0.0.1", 0, **backend) as server:
        with pytest.raises(KeyError), connect(uri(server), **backend):
            raise KeyError("boom")
        wait(done)
    assert closed == ["received 1011 (internal error); then sent 1011 (internal error)"]


def test_generator_error_after_first_fragment_fails_1011(backend: dict[str, Any]) -> None:
    def fragments() -> Iterator[str]:
        yield "first"
        raise ValueError("no more")

    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        with pytest.raises(ValueError, match=r"^no more$"):
            ws.send(fragments())
        with pytest.raises(ConnectionClosedError) as excinfo:
            ws.recv(TIMEOUT)
        assert str(excinfo.value) == (
            "sent 1011 (internal error) error in fragmented message; no close frame received"
        )


def test_close_wakes_recv_in_another_thread(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server:
        ws = connect(uri(server), **backend)
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                ws.recv()
            except BaseException as exc:
                errors.append(exc)

        thread = start_thread(reader)
        until(ws.portal, lambda: ws.async_connection._inbox.busy)
        ws.close()
        join(thread)
        [exc] = errors
        assert type(exc) is ConnectionClosedOK
        assert str(exc) == "sent 1000 (OK); then received 1000 (OK)"


def test_connect_refused_leaves_no_thread(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server:
        port = server.port
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{port}/", **backend)
    assert portal_threads() == []


def test_connect_rejected_raises_invalid_status(backend: dict[str, Any]) -> None:
    def process_request(
        connection: anyws.ServerConnection, request: anyws.Request
    ) -> anyws.Response:
        return connection.respond(403, "Go away.\n")

    with (
        serve(echo, "127.0.0.1", 0, process_request=process_request, **backend) as server,
        pytest.raises(InvalidStatus) as excinfo,
    ):
        connect(uri(server), **backend)
    assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 403"
    assert excinfo.value.response.body == b"Go away.\n"
    assert portal_threads() == []


def test_interrupted_recv_loses_nothing(backend: dict[str, Any]) -> None:
    """Ctrl-C in recv() cancels the call: the connection stays usable, no message is lost."""
    script = textwrap.dedent(
        f"""
        import os, signal, threading, time
        import anyio
        from anyws.sync import connect, serve

        def echo(ws):
            for message in ws:
                ws.send(message)

        backend = {backend_source(backend)}
        with serve(echo, "127.0.0.1", 0, **backend) as server:
            with connect(f"ws://127.0.0.1:{{server.port}}/", **backend) as ws:

                def interrupt():
                    deadline = time.monotonic() + 10
                    while not ws.async_connection._inbox.busy:
                        assert time.monotonic() < deadline
                        ws.portal.call(anyio.wait_all_tasks_blocked)
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

                threading.Thread(target=interrupt, daemon=True).start()
                try:
                    ws.recv()
                except KeyboardInterrupt:
                    print("interrupted")
                ws.send("after")
                print(ws.recv(10))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.stdout == "interrupted\nafter\n", result.stderr
    assert result.returncode == 0, result.stderr


# Ping --------------------------------------------------------------------------------


def test_ping(backend: dict[str, Any]) -> None:
    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        pong_received = ws.ping("payload")
        assert isinstance(pong_received, threading.Event)
        wait(pong_received)
        assert ws.latency >= 0  # uvloop's clock ticks in milliseconds: 0 happens
        ws.pong("unsolicited")
        ws.send("still open")
        assert ws.recv(TIMEOUT) == "still open"


def test_ping_ack_on_close(backend: dict[str, Any]) -> None:
    entered = threading.Event()
    release = threading.Event()

    def handler(ws: ServerConnection) -> None:
        entered.set()
        wait(release)

    with serve(handler, "127.0.0.1", 0, max_queue=1, **backend) as server:
        ws = connect(uri(server), close_timeout=50 * MS, **backend)
        wait(entered)
        # One message fills the server's queue: it stops reading, pings go unanswered.
        ws.send("fills the queue")
        [connection] = server.connections
        until(server.portal, lambda: connection.async_connection._inbox.paused)
        ignored = ws.ping(b"a")
        acked = ws.ping(b"b", ack_on_close=True)
        ws.close()  # the closing handshake times out too
        assert ws.close_code == 1006
        assert acked.is_set()
        assert not ignored.is_set()
        release.set()


# Server shutdown -----------------------------------------------------------------------


def test_shutdown_while_handlers_block_in_recv(backend: dict[str, Any]) -> None:
    barrier = threading.Barrier(3, timeout=TIMEOUT)
    closed: list[str] = []

    def handler(ws: ServerConnection) -> None:
        barrier.wait()
        try:
            ws.recv()
        except ConnectionClosedOK as exc:
            closed.append(str(exc))

    server = serve(handler, "127.0.0.1", 0, **backend)
    forever = start_thread(server.serve_forever)
    clients = [connect(uri(server), **backend) for _ in range(2)]
    barrier.wait()
    server.shutdown()
    join(forever)
    assert closed == ["sent 1001 (going away); then received 1001 (going away)"] * 2
    for ws in clients:
        with pytest.raises(ConnectionClosedOK) as excinfo:
            ws.recv(TIMEOUT)
        assert str(excinfo.value) == "received 1001 (going away); then sent 1001 (going away)"
        ws.close()
    server.shutdown()  # idempotent
    assert portal_threads() == []


def test_shutdown_with_code_and_reason(backend: dict[str, Any]) -> None:
    entered = threading.Event()

    def handler(ws: ServerConnection) -> None:
        entered.set()
        echo(ws)

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        wait(entered)
        server.shutdown(code=1012, reason="restart")
        with pytest.raises(ConnectionClosedError) as excinfo:
            ws.recv(TIMEOUT)
        assert str(excinfo.value) == (
            "received 1012 (service restart) restart; then sent 1012 (service restart) restart"
        )


def test_shutdown_with_an_invalid_code_raises_and_keeps_serving(backend: dict[str, Any]) -> None:
    with serve(echo, "127.0.0.1", 0, **backend) as server:
        with pytest.raises(ProtocolError) as excinfo:
            server.shutdown(code=1005)
        assert str(excinfo.value) == "invalid status code: 1005"
        with pytest.raises(ProtocolError) as excinfo:
            server.shutdown(reason="x" * 124)
        assert str(excinfo.value) == "close reason too long"
        with connect(uri(server), **backend) as ws:
            ws.send("still serving")
            assert ws.recv(TIMEOUT) == "still serving"


def test_shutdown_abandons_a_stuck_handler(backend: dict[str, Any]) -> None:
    entered = threading.Event()
    release = threading.Event()
    after: list[BaseException] = []
    handler_threads: list[threading.Thread] = []

    def handler(ws: ServerConnection) -> None:
        handler_threads.append(threading.current_thread())
        entered.set()
        wait(release)  # stuck elsewhere than in recv
        try:
            ws.send("too late")
        except BaseException as exc:
            after.append(exc)

    server = serve(handler, "127.0.0.1", 0, close_timeout=50 * MS, **backend)
    with connect(uri(server), **backend) as ws:
        wait(entered)
        server.shutdown()  # returns after close_timeout despite the handler
        release.set()
        with pytest.raises(ConnectionClosedOK):
            ws.recv(TIMEOUT)
    [handler_thread] = handler_threads
    assert handler_thread.daemon
    join(handler_thread)
    [exc] = after
    assert type(exc) is ConnectionClosedOK
    assert str(exc) == "sent 1001 (going away); then received 1001 (going away)"


# Threads -------------------------------------------------------------------------------


def test_send_from_two_threads(backend: dict[str, Any]) -> None:
    count = 200
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):

        def sender(name: str) -> Callable[[], None]:
            def send() -> None:
                barrier.wait()
                for index in range(count):
                    ws.send(f"{name}{index}")

            return send

        threads = [start_thread(sender("a")), start_thread(sender("b"))]
        received = [ws.recv(TIMEOUT) for _ in range(2 * count)]
        for thread in threads:
            join(thread)
    assert [m for m in received if m[0] == "a"] == [f"a{i}" for i in range(count)]
    assert [m for m in received if m[0] == "b"] == [f"b{i}" for i in range(count)]


def test_many_clients_from_many_threads(backend: dict[str, Any]) -> None:
    clients = 8
    barrier = threading.Barrier(clients, timeout=TIMEOUT)
    results: dict[int, anyws.Data] = {}
    with serve(echo, "127.0.0.1", 0, **backend) as server:

        def client(index: int) -> Callable[[], None]:
            def run() -> None:
                with connect(uri(server), **backend) as ws:
                    barrier.wait()
                    ws.send(f"client {index}")
                    results[index] = ws.recv(TIMEOUT)

            return run

        threads = [start_thread(client(index)) for index in range(clients)]
        for thread in threads:
            join(thread)
    assert results == {index: f"client {index}" for index in range(clients)}
    assert portal_threads() == []


# Misuse ----------------------------------------------------------------------------------


def test_calls_from_the_event_loop_thread_raise(backend: dict[str, Any]) -> None:
    with (
        serve(echo, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
    ):
        for method in (ws.recv, ws.close, lambda: ws.send("x")):
            with pytest.raises(RuntimeError) as excinfo:
                ws.portal.call(method)
            assert str(excinfo.value).endswith(
                "from the event loop thread of this connection: it would wait for "
                "itself; use the async API (anyws.connect, anyws.serve) in async code"
            )
        with pytest.raises(RuntimeError, match=r"^cannot call recv\(\) from the event loop"):
            ws.portal.call(ws.recv)
        with pytest.raises(RuntimeError, match=r"^cannot call shutdown\(\) from the event"):
            server.portal.call(server.shutdown)
        ws.send("still works")
        assert ws.recv(TIMEOUT) == "still works"


def test_shutdown_from_a_handler_raises(backend: dict[str, Any]) -> None:
    errors: list[str] = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.server.shutdown()
        except RuntimeError as exc:
            errors.append(str(exc))

    with (
        serve(handler, "127.0.0.1", 0, **backend) as server,
        connect(uri(server), **backend) as ws,
        pytest.raises(ConnectionClosedOK),
    ):
        ws.recv(TIMEOUT)
    assert errors == [
        "cannot call shutdown() from a connection handler of this server: "
        "it waits for every handler to return, this one included"
    ]


def test_ctrl_c_stops_serve_forever(backend: dict[str, Any]) -> None:
    script = textwrap.dedent(
        f"""
        import faulthandler, signal
        from anyws.sync import connect, serve

        # A shell may start the test run with SIGINT ignored, and children inherit that.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        faulthandler.dump_traceback_later({2 * TIMEOUT}, exit=True)  # shows a hang

        def echo(ws):
            for message in ws:
                ws.send(message)

        backend = {backend_source(backend)}
        try:
            with serve(echo, "127.0.0.1", 0, **backend) as server:
                client = connect(f"ws://127.0.0.1:{{server.port}}/", **backend)
                print("serving", flush=True)
                server.serve_forever()
        except KeyboardInterrupt:
            try:
                client.recv(10)
            except Exception as exc:
                print(type(exc).__name__, exc)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "serving\n"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=3 * TIMEOUT)
    finally:
        process.kill()
    assert stdout == (
        "ConnectionClosedOK received 1001 (going away); then sent 1001 (going away)\n"
    ), stderr
    assert process.returncode == 0, stderr


# Interpreter exit ------------------------------------------------------------------------


def test_interpreter_exit_does_not_hang(backend: dict[str, Any]) -> None:
    source = backend_source(backend)
    script = textwrap.dedent(
        f"""
        import threading
        from anyws.sync import connect, serve

        entered = threading.Event()

        def handler(ws):
            entered.set()
            threading.Event().wait()  # stuck forever

        backend = {source}
        server = serve(handler, "127.0.0.1", 0, **backend)
        ws = connect(f"ws://127.0.0.1:{{server.port}}/", **backend)
        assert entered.wait(10)
        print("exiting without closing anything")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.stdout == "exiting without closing anything\n", result.stderr
    assert result.returncode == 0, result.stderr


# Examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [name for name in ("asyncio", "trio") if name in BACKENDS])
def test_example_sync_echo(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    example = runpy.run_path(str(EXAMPLES / "sync_echo.py"))
    example["main"](name)
    assert capsys.readouterr().out == "Hello, world!\nTimeoutError: timed out in 0.1s\n"
    assert portal_threads() == []
