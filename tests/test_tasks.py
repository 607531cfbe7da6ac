"""Tasks of a connection's own: `Connection.start_soon` and `Connection.start`.

Every test runs on each backend, over 127.0.0.1 TCP (anyws' asyncio transport on
asyncio, anyio's socket streams on trio), TLS (trustme) and in-memory streams
(`anyws.testing.connection_pair`), and is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

import anyws
from anyws import (
    ClientConnection,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Request,
    Response,
    ServerConnection,
)
from anyws.testing import connection_pair
from tests.conftest import MS


TIMEOUT = 10_000 * MS

Handler = Callable[[ServerConnection], Awaitable[None]]


#: The TLS contexts of the "tls" transport: (server, client).
_TLS: dict[str, ssl.SSLContext] = {}


@pytest.fixture(params=["tcp", "tls", "memory"])
def transport(request: pytest.FixtureRequest) -> str:
    if request.param == "tls":
        _TLS["server"] = request.getfixturevalue("server_ssl_context")
        _TLS["client"] = request.getfixturevalue("client_ssl_context")
    return str(request.param)


@asynccontextmanager
async def client_for(transport: str, handler: Handler) -> AsyncIterator[ClientConnection]:
    """A client connected to a server that runs ``handler``."""
    if transport == "tcp":
        async with (
            anyws.serve(handler, "127.0.0.1", 0) as server,
            anyws.connect(f"ws://127.0.0.1:{server.port}/") as client,
        ):
            yield client
    elif transport == "tls":
        async with (
            anyws.serve(handler, "127.0.0.1", 0, ssl=_TLS["server"]) as server,
            anyws.connect(f"wss://127.0.0.1:{server.port}/", ssl=_TLS["client"]) as client,
        ):
            yield client
    else:
        async with connection_pair(handler=handler) as (client, _):
            yield client


async def wait_closed_quietly(ws: anyws.Connection) -> None:
    await ws.wait_closed()


# A pusher beside a reader ---------------------------------------------------------------


async def test_pusher_and_reader_handler(transport: str) -> None:
    """The handler reads while its task pushes; the task ends with the connection."""
    pusher_ended = anyio.Event()
    outcome: list[str] = []

    async def push(ws: ServerConnection) -> None:
        try:
            for n in range(3):
                await ws.send(f"tick {n}")
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("pusher cancelled")
            raise
        finally:
            pusher_ended.set()

    async def handler(ws: ServerConnection) -> None:
        ws.start_soon(push, ws, name="pusher")
        async for message in ws:
            await ws.send(f"echo {message}")
        outcome.append(f"reader ended with {ws.close_code}")

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, handler) as client:
            assert [await client.recv() for _ in range(3)] == ["tick 0", "tick 1", "tick 2"]
            await client.send("hi")
            assert await client.recv() == "echo hi"
        await pusher_ended.wait()
    assert sorted(outcome) == ["pusher cancelled", "reader ended with 1000"]


# The connection closes: its tasks are cancelled ------------------------------------------


async def test_peer_close_cancels_tasks(transport: str) -> None:
    outcome: list[str] = []

    async def wait_forever() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    async def handler(ws: ServerConnection) -> None:
        assert await ws.recv() == "close, please"
        await ws.close(4000, "as asked")

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, handler) as client:
            client.start_soon(wait_forever)
            await client.send("close, please")
            await client.wait_closed()
            assert client.close_code == 4000
            # Closed, but recv() didn't report it yet: the task runs on.
            await anyio.wait_all_tasks_blocked()
            assert outcome == []
            with pytest.raises(ConnectionClosed):
                await client.recv()
            # Cancelled when the receive loop saw the close, not when the block ends.
            while not outcome:
                await anyio.lowlevel.checkpoint()
            assert outcome == ["cancelled"]


async def test_a_relay_task_loses_no_message(transport: str) -> None:
    """Messages that arrived with the close frame are still received by a task."""

    async def send_and_close(ws: ServerConnection) -> None:
        for n in range(3):
            await ws.send(f"message {n}")

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, send_and_close) as client:
            send, receive = anyio.create_memory_object_stream[anyws.Data](1)

            async def relay() -> None:
                async with send:
                    async for message in client:
                        await send.send(message)

            await client.wait_closed()  # before the relay even starts
            client.start_soon(relay)
            async with receive:
                received = [message async for message in receive]
    assert received == ["message 0", "message 1", "message 2"]


async def test_local_close_cancels_tasks(transport: str) -> None:
    outcome: list[str] = []

    async def wait_forever(*, task_status: anyio.abc.TaskStatus[str]) -> None:
        task_status.started("ready")
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, wait_closed_quietly) as client:
            assert await client.start(wait_forever, name="waiter") == "ready"
            await client.close()
            while not outcome:
                await anyio.lowlevel.checkpoint()
            assert outcome == ["cancelled"]
            with pytest.raises(ConnectionClosedOK):
                client.start_soon(wait_forever)
            with pytest.raises(ConnectionClosedOK):
                await client.start(wait_forever)


async def test_tasks_outlive_nothing(transport: str) -> None:
    """A task still running when the block ends is cancelled; none is left behind."""
    outcome: list[str] = []

    async def wait_forever() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    async def handler(ws: ServerConnection) -> None:
        ws.start_soon(wait_forever)
        ws.start_soon(wait_forever)
        # The handler returns at once: the connection closes, its tasks with it.

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, handler) as client:
            client.start_soon(wait_forever)
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
            assert client.close_code == 1000
        while len(outcome) < 3:
            await anyio.lowlevel.checkpoint()
    assert outcome == ["cancelled"] * 3


# ConnectionClosed in a task is quiet ---------------------------------------------------


async def test_connection_closed_in_a_task_ends_it_quietly(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="anyws")
    results: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        async def send_late() -> None:
            await ws.wait_closed()
            results.append("sending")
            await ws.send("too late")  # raises ConnectionClosedOK
            results.append("unreachable")

        ws.start_soon(send_late)
        async for _ in ws:
            pass

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, handler) as client:
            received: list[str] = []

            async def read_until_closed() -> None:
                received.extend([str(message) async for message in client])

            client.start_soon(read_until_closed)
            await client.send("bye")
    assert received == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# A task raises -------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["recv", "elsewhere"])
async def test_task_exception_comes_out_of_connect(transport: str, body: str) -> None:
    """As itself, not in an ExceptionGroup; the body is cancelled; the peer sees 1011."""
    server_saw: list[int | None] = []
    go = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        with pytest.raises(ConnectionClosedError):
            await ws.recv()
        server_saw.append(ws.close_code)

    async def fail() -> None:
        await go.wait()
        raise ValueError("boom")

    async def run() -> None:
        async with client_for(transport, handler) as client:
            client.start_soon(fail)
            go.set()
            if body == "recv":
                await client.recv()
            else:
                await anyio.sleep_forever()
            pytest.fail("the body wasn't cancelled")

    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ValueError, match=r"^boom$") as excinfo:
            await run()
        while not server_saw:
            await anyio.lowlevel.checkpoint()
    assert type(excinfo.value) is ValueError
    assert server_saw == [1011]  # the close frame the client sent


async def test_task_exception_on_server_is_logged_as_the_handler_s(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler_outcome: list[str] = []

    async def fail() -> None:
        raise RuntimeError("pusher broke")

    async def handler(ws: ServerConnection) -> None:
        ws.start_soon(fail)
        try:
            async for _ in ws:
                pass
        except anyio.get_cancelled_exc_class():
            handler_outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, handler) as client:
            with pytest.raises(ConnectionClosedError) as excinfo:
                await client.recv()
            assert excinfo.value.rcvd is not None
            assert excinfo.value.rcvd.code == 1011
    assert handler_outcome == ["cancelled"]
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == "connection handler failed"
    assert record.exc_info is not None
    assert type(record.exc_info[1]) is RuntimeError
    assert str(record.exc_info[1]) == "pusher broke"


async def test_second_task_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    both = anyio.Event()
    count = 0

    async def fail(message: str) -> None:
        nonlocal count
        count += 1
        if count == 2:
            both.set()
        await both.wait()
        raise ValueError(message)

    async def run() -> None:
        async with connection_pair() as (client, _):
            client.start_soon(fail, "first")
            client.start_soon(fail, "second")
            await client.wait_closed()

    with anyio.fail_after(TIMEOUT), pytest.raises(ValueError, match=r"^(first|second)$") as excinfo:
        await run()
    # The first to fail comes out; the other one is logged.
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == "connection task failed"
    assert record.exc_info is not None
    assert {str(record.exc_info[1]), str(excinfo.value)} == {"first", "second"}


async def test_body_exception_wins_over_a_task_s(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise ValueError("task")

    async def run() -> None:
        async with connection_pair() as (client, _):
            client.start_soon(fail)
            with anyio.CancelScope(shield=True):  # the body carries on, and fails
                await client.wait_closed()
            raise KeyError("body")

    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError):
        await run()
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == "connection task failed"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "task"


# start() -------------------------------------------------------------------------------


async def test_start_errors_before_started_go_to_the_caller(transport: str) -> None:
    async def fail_early(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        raise ValueError("not ready")

    async def return_early(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        pass

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, echo) as client:
            with pytest.raises(ValueError, match=r"^not ready$"):
                await client.start(fail_early)
            with pytest.raises(RuntimeError):
                await client.start(return_early)
            # The connection is none the worse.
            await client.send("still open")
            assert await client.recv() == "still open"


async def test_start_soon_before_the_connection_runs() -> None:
    errors: list[str] = []

    async def nothing() -> None:
        pass

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        try:
            ws.start_soon(nothing)
        except RuntimeError as exc:
            errors.append(str(exc))
        return None

    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(wait_closed_quietly, "127.0.0.1", 0, process_request=process_request) as s,
            anyws.connect(f"ws://127.0.0.1:{s.port}/"),
        ):
            pass
    assert errors == ["the connection isn't running: start tasks once it is open"]


async def test_connection_closed_before_started_goes_to_the_caller() -> None:
    async def send_on_closed(
        ws: anyws.Connection, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        await ws.send("x")

    with anyio.fail_after(TIMEOUT):
        async with connection_pair() as (client, server):
            await server.close()
            # Closed, but not seen closed yet by start(): the task raises it.
            with pytest.raises(ConnectionClosed):
                await client.start(send_on_closed, client)
