"""`anyws.reconnect`: retries, backoff, attempts entered with ``async with``.

End to end against real anyws servers on 127.0.0.1 on every backend, with backoff
delays small enough for real time; the delay sequence itself under trio's MockClock
(virtual time), with streams opened in memory; and the pure parts on their own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import pathlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

import anyws
from anyws import (
    ConnectionAttempt,
    ConnectionClosed,
    InvalidMessage,
    InvalidStatus,
    Request,
    Response,
    ServerConnection,
    connect,
    reconnect,
    serve,
)
from anyws._connection import Running
from anyws._reconnect import backoff_delays, process_exception
from anyws.sansio import Headers, WebSocketURI
from anyws.testing import memory_stream_pair
from tests.conftest import MS
from tests.test_client_server import raw_server


TIMEOUT = 10_000 * MS

#: Backoff small enough for real time: no delay, then 1 ms, 2 ms, 4 ms...
FAST: dict[str, Any] = {
    "backoff_initial_delay": 0,
    "backoff_min_delay": 1 * MS,
    "backoff_factor": 2,
    "backoff_max_delay": 10 * MS,
}

CLIENT_LOGGER = "anyws.client"


def failing_statuses(*statuses: int) -> tuple[Callable[..., Response | None], list[str]]:
    """A ``process_request`` answering the first requests with ``statuses``, then accepting."""
    paths: list[str] = []
    pending = list(statuses)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        paths.append(request.path)
        if pending:
            return ws.respond(pending.pop(0), "not now\n")
        return None

    return process_request, paths


async def greet_and_close(ws: ServerConnection) -> None:
    await ws.send("hello")


async def never_connects(attempts: reconnect) -> None:
    """Iterate, failing the test if a connection opens."""
    async for _ in attempts:
        pytest.fail("connected")


# Reconnecting end to end -------------------------------------------------------------


async def test_reconnect_after_server_closes() -> None:
    received: list[str] = []
    closes: list[int | None] = []
    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0) as server:
            async for attempt in reconnect(f"ws://127.0.0.1:{server.port}/", **FAST):
                try:
                    async with attempt as websocket:
                        async for message in websocket:
                            assert isinstance(message, str)
                            received.append(message)
                        closes.append(websocket.close_code)
                except ConnectionClosed:  # pragma: no cover - the server closes cleanly
                    continue
                if len(received) == 3:
                    break
    assert received == ["hello"] * 3
    assert closes == [1000] * 3


async def test_retry_on_503_then_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    process_request, paths = failing_statuses(503, 502)
    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0, process_request=process_request) as s:
            async for attempt in reconnect(f"ws://127.0.0.1:{s.port}/", **FAST):
                async with attempt as websocket:
                    assert await websocket.recv() == "hello"
                break
    assert len(paths) == 3
    messages = [
        record.getMessage()
        for record in caplog.records
        if record.name == CLIENT_LOGGER and record.levelno == logging.INFO
    ]
    assert messages == [
        "connect failed; reconnecting in 0.0 seconds: "
        f"anyws.exceptions.InvalidStatus: server rejected WebSocket connection: HTTP {status}"
        for status in (503, 502)
    ]


async def test_no_retry_on_403() -> None:
    process_request, paths = failing_statuses(403)
    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0, process_request=process_request) as s:
            with pytest.raises(InvalidStatus) as excinfo:
                await never_connects(reconnect(f"ws://127.0.0.1:{s.port}/", **FAST))
    assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 403"
    assert len(paths) == 1


async def test_retry_on_connection_refused() -> None:
    failures: list[Exception] = []

    def give_up_after_three(exc: Exception) -> Exception | None:
        failures.append(exc)
        assert reconnect.process_exception(exc) is None
        return exc if len(failures) == 3 else None

    # A bound socket that doesn't listen: connecting to its port is refused.
    with socket.socket() as sock, anyio.fail_after(TIMEOUT):
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(OSError, match="All connection attempts failed"):
            await never_connects(
                reconnect(f"ws://127.0.0.1:{port}/", process_exception=give_up_after_three, **FAST)
            )
    assert len(failures) == 3


async def test_retry_when_the_server_closes_during_the_handshake() -> None:
    failures: list[Exception] = []

    def give_up_after_two(exc: Exception) -> Exception | None:
        failures.append(exc)
        assert reconnect.process_exception(exc) is None
        return exc if len(failures) == 2 else None

    async def close_at_once(stream: anyio.abc.SocketStream) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with raw_server(close_at_once) as port:
            with pytest.raises(InvalidMessage, match="did not receive a valid HTTP response"):
                await never_connects(
                    reconnect(
                        f"ws://127.0.0.1:{port}/", process_exception=give_up_after_two, **FAST
                    )
                )
    assert len(failures) == 2


async def test_process_exception_override_retries_403() -> None:
    process_request, paths = failing_statuses(403, 403)

    def retry_403(exc: Exception) -> Exception | None:
        if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
            return None
        return reconnect.process_exception(exc)

    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0, process_request=process_request) as s:
            async for attempt in reconnect(
                f"ws://127.0.0.1:{s.port}/", process_exception=retry_403, **FAST
            ):
                async with attempt as websocket:
                    assert await websocket.recv() == "hello"
                break
    assert len(paths) == 3


@pytest.mark.parametrize("how", ["returns", "raises"])
async def test_process_exception_replaces_the_exception(how: str) -> None:
    process_request, _ = failing_statuses(503)

    def fatal(exc: Exception) -> Exception | None:
        error = RuntimeError("giving up")
        if how == "raises":
            raise error
        return error

    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0, process_request=process_request) as s:
            with pytest.raises(RuntimeError, match="giving up") as excinfo:
                await never_connects(
                    reconnect(f"ws://127.0.0.1:{s.port}/", process_exception=fatal)
                )
    assert isinstance(excinfo.value.__cause__, InvalidStatus)


# Attempts ------------------------------------------------------------------------------


async def test_attempt_not_entered_is_closed_before_the_next() -> None:
    ends: list[str] = []
    first_closed = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.send("hello")
            async for _ in ws:
                pass
        except ConnectionClosed as exc:
            ends.append(type(exc).__name__)
        else:
            ends.append("OK")
        first_closed.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server:
            skipped: ConnectionAttempt | None = None
            async for attempt in reconnect(f"ws://127.0.0.1:{server.port}/", **FAST):
                if skipped is None:
                    skipped = attempt
                    continue
                await first_closed.wait()
                assert ends == ["ConnectionClosedError"]  # aborted: no close frame
                async with attempt as websocket:
                    assert await websocket.recv() == "hello"
                break
            assert skipped is not None
            with pytest.raises(RuntimeError, match="this connection attempt was abandoned"):
                async with skipped:
                    pytest.fail("entered")


async def test_attempt_entered_twice() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0) as server:
            async for attempt in reconnect(f"ws://127.0.0.1:{server.port}/", **FAST):
                async with attempt:
                    pass
                with pytest.raises(RuntimeError, match="this connection attempt was entered"):
                    async with attempt:
                        pytest.fail("entered")
                break


async def test_leaving_early_with_aclosing_closes_the_pending_attempt() -> None:
    closed = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
        closed.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server:
            async with contextlib.aclosing(reconnect(f"ws://127.0.0.1:{server.port}/")) as it:
                async for _ in it:
                    break
            await closed.wait()


async def test_cancelled_during_backoff() -> None:
    failures: list[Exception] = []

    with anyio.fail_after(TIMEOUT), socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with anyio.CancelScope() as scope:

            def cancel_on_second(exc: Exception) -> Exception | None:
                failures.append(exc)
                if len(failures) == 2:
                    scope.cancel()
                return None

            await never_connects(
                reconnect(
                    f"ws://127.0.0.1:{port}/",
                    process_exception=cancel_on_second,
                    backoff_initial_delay=0,
                    backoff_min_delay=3600,
                )
            )
    assert scope.cancelled_caught
    assert len(failures) == 2


async def test_concurrent_iteration() -> None:
    failed_twice = anyio.Event()
    failures: list[Exception] = []

    def retry(exc: Exception) -> Exception | None:
        failures.append(exc)
        if len(failures) == 2:
            failed_twice.set()
        return None

    with anyio.fail_after(TIMEOUT), socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        attempts = reconnect(
            f"ws://127.0.0.1:{port}/",
            process_exception=retry,
            backoff_initial_delay=0,
            backoff_min_delay=3600,
        )
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(attempts.__anext__)
            await failed_twice.wait()  # the first task sleeps for an hour now
            with pytest.raises(anyws.ConcurrencyError) as excinfo:
                await attempts.__anext__()
            task_group.cancel_scope.cancel()
    assert str(excinfo.value) == "another task is waiting for the next connection attempt"


# API ---------------------------------------------------------------------------------------


def test_connect_is_not_an_async_iterator() -> None:
    with pytest.raises(TypeError) as excinfo:
        connect("ws://localhost/").__aiter__()
    assert "anyws.reconnect" in str(excinfo.value)


async def test_async_for_over_connect() -> None:
    async def iterate() -> None:
        async for _ in connect("ws://localhost/"):
            pytest.fail("iterated")

    with pytest.raises(TypeError, match=r"use anyws\.reconnect\(\)"):
        await iterate()


def test_reconnect_arguments() -> None:
    with pytest.raises(ValueError, match="can't reuse a stream"):
        reconnect("ws://localhost/", stream=memory_stream_pair()[0])
    with pytest.raises(ValueError, match="backoff delays must be 0 or more"):
        reconnect("ws://localhost/", backoff_min_delay=-1)
    with pytest.raises(ValueError, match="backoff_factor must be 1 or more"):
        reconnect("ws://localhost/", backoff_factor=0.5)
    with pytest.raises(anyws.InvalidURI):
        reconnect("http://localhost/")
    with pytest.raises(TypeError):
        reconnect("ws://localhost/", no_such_option=1)
    attempts = reconnect("ws://localhost/", open_timeout=3)
    assert attempts.connect.open_timeout == 3


# Virtual time: the delays between attempts ------------------------------------------------


class Scripted:
    """Replaces ``connect._open_stream``: each call fails or opens a memory stream.

    ``script`` is a string of ``F`` (refused), ``S`` (a memory stream to an anyws
    server, which accepts) and ``X`` (a fatal ``ValueError``). ``times`` records the
    clock at each call.
    """

    def __init__(self, script: str, task_group: anyio.abc.TaskGroup) -> None:
        self.script = list(script)
        self.times: list[float] = []
        self.task_group = task_group
        self.server = serve(self.handler)

    async def handler(self, ws: ServerConnection) -> None:  # pragma: no cover
        raise AssertionError("unused")

    async def __call__(self, uri: WebSocketURI) -> anyio.abc.AnyByteStream:
        self.times.append(anyio.current_time())
        await anyio.lowlevel.checkpoint()
        step = self.script.pop(0)
        if step == "F":
            raise ConnectionRefusedError("refused")
        if step == "X":
            raise ValueError("fatal")
        client_stream, server_stream = memory_stream_pair()
        self.task_group.start_soon(self.serve_one, server_stream)
        return client_stream

    async def serve_one(self, stream: anyio.abc.AnyByteStream) -> None:
        connection = await self.server._handshake(stream)
        assert connection is not None
        async with Running(connection):
            async for _ in connection:  # until the client closes
                pass


@contextlib.asynccontextmanager
async def scripted(script: str, **kwargs: Any) -> AsyncIterator[tuple[reconnect, Scripted]]:
    async with anyio.create_task_group() as task_group:
        attempts = reconnect("ws://localhost/", **kwargs)
        opener = Scripted(script, task_group)
        attempts.connect._open_stream = opener  # type: ignore[method-assign]
        yield attempts, opener


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.autojump
async def test_backoff_delays_in_virtual_time(mock_clock: Any) -> None:
    connections = 0

    async def run(attempts: reconnect) -> None:
        nonlocal connections
        async for attempt in attempts:
            async with attempt:
                connections += 1

    with anyio.fail_after(3600):
        async with scripted("FFFFSFFX") as (attempts, opener):
            with pytest.raises(ValueError, match="fatal"):
                await run(attempts)
    assert connections == 1
    jitter, *rest = gaps(opener.times)
    assert 0 <= jitter < 5
    expected = [3.1, 3.1 * 1.618, 3.1 * 1.618**2, 0.0]  # then reset after success
    assert rest[:4] == pytest.approx(expected)
    second_jitter, last = rest[4:]
    assert 0 <= second_jitter < 5
    assert last == pytest.approx(3.1)


@pytest.mark.autojump
async def test_backoff_reaches_max_delay_in_virtual_time(mock_clock: Any) -> None:
    with anyio.fail_after(3600):
        async with scripted("F" * 12 + "X", backoff_initial_delay=0) as (attempts, opener):
            with pytest.raises(ValueError, match="fatal"):
                await never_connects(attempts)
    assert gaps(opener.times) == pytest.approx(list(itertools.islice(backoff_delays(0), 12)))
    assert gaps(opener.times)[-3:] == pytest.approx([90.0, 90.0, 90.0])


@pytest.mark.autojump
async def test_cancelled_during_backoff_in_virtual_time(mock_clock: Any) -> None:
    with anyio.move_on_after(60) as scope:
        async with scripted("F" * 100) as (attempts, opener):
            async for _ in attempts:
                pytest.fail("connected")
    assert scope.cancelled_caught
    assert mock_clock.current_time() == pytest.approx(60)
    # Attempts at 0, then after the jitter (< 5 s), 3.1, 5.0, 8.1, 13.1 and 21.3 s
    # more: the 7th comes before 55.6 s; the next delay, 34.4 s, is cut short.
    assert len(opener.times) == 7


# The pure parts ------------------------------------------------------------------------------


def test_backoff_delays_sequence() -> None:
    delays = backoff_delays(random=lambda: 0.5)
    first = [next(delays) for _ in range(12)]
    assert first == pytest.approx(
        [
            2.5,
            3.1,
            3.1 * 1.618,
            3.1 * 1.618**2,
            3.1 * 1.618**3,
            3.1 * 1.618**4,
            3.1 * 1.618**5,
            3.1 * 1.618**6,
            3.1 * 1.618**7,
            90.0,
            90.0,
            90.0,
        ]
    )
    assert 3.1 * 1.618**7 < 90 < 3.1 * 1.618**8


def test_backoff_delays_parameters() -> None:
    delays = backoff_delays(1, 2, 5, 2, random=lambda: 0.25)
    assert [next(delays) for _ in range(5)] == [0.25, 2, 4, 5, 5]
    jitters = {next(backoff_delays()) for _ in range(100)}
    assert all(0 <= jitter < 5 for jitter in jitters)
    assert len(jitters) > 1


def invalid_message(cause: BaseException | None) -> InvalidMessage:
    exc = InvalidMessage("did not receive a valid HTTP response")
    exc.__cause__ = cause
    return exc


def invalid_status(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers()))


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (OSError("network down"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (invalid_message(EOFError("connection closed")), True),
        (invalid_message(ConnectionResetError()), True),
        (invalid_message(anyio.BrokenResourceError()), True),
        (invalid_message(InvalidMessage("invalid HTTP status line: b'x'")), False),
        (invalid_message(None), False),
        (invalid_status(500), True),
        (invalid_status(502), True),
        (invalid_status(503), True),
        (invalid_status(504), True),
        (invalid_status(501), False),
        (invalid_status(403), False),
        (invalid_status(404), False),
        (anyws.SecurityError("more than 10 redirects"), False),
        (ValueError(), False),
    ],
)
def test_default_process_exception(exc: Exception, retried: bool) -> None:
    assert process_exception(exc) is (None if retried else exc)
    assert reconnect.process_exception is process_exception


# The example in the docs ---------------------------------------------------------------------


async def test_example_reconnect() -> None:
    path = pathlib.Path(__file__).parent.parent / "examples" / "reconnect.py"
    spec = importlib.util.spec_from_file_location("example_reconnect", path)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    received: list[anyws.Data] = []
    with anyio.fail_after(TIMEOUT):
        async with serve(greet_and_close, "127.0.0.1", 0) as server:
            with anyio.CancelScope() as scope:

                def handle(message: anyws.Data) -> None:
                    received.append(message)
                    if len(received) == 3:
                        scope.cancel()

                await example.consume(f"ws://127.0.0.1:{server.port}/", handle)
    assert received == ["hello"] * 3
