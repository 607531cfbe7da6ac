"""docs/topics/concurrency.md says what cancellation does to each call: keep it true.

Each scenario leaves a server in one of the ways that the table of "What cancellation
does to each call" lists, over TCP, with a client connected, and checks what the client
saw against what the row says: a closing handshake with 1001, or none.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from anyws import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Server,
    ServerConnection,
    connect,
    serve,
)
from tests.conftest import MS


TIMEOUT = 10_000 * MS

CONCURRENCY = Path(__file__).parent.parent / "docs" / "topics" / "concurrency.md"

GRACEFUL = "received 1001 (going away); then sent 1001 (going away)"
ABORTED = "no close frame received or sent"


def table_rows() -> dict[str, str]:
    """The rows of the cancellation table: the call's cell -> what cancellation does."""
    text = CONCURRENCY.read_text(encoding="utf-8")
    section = text.split("## What cancellation does to each call", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| (.+?) \| (.+) \|", line)
        if match and not set(match.group(1)) <= {"-", " "}:
            rows[match.group(1)] = match.group(2)
    return rows


async def leave_normally(server: Server) -> None:
    pass


#: scenario -> (its row in the table, what the client sees)
SCENARIOS = {
    "exit": ("leaving `serve()` normally, or {meth}`anyws.Server.close`", GRACEFUL),
    "cancelled": ("leaving {class}`anyws.serve` by cancellation", GRACEFUL),
    "serve_forever": ("{meth}`anyws.Server.serve_forever`", GRACEFUL),
    "task_group_start": ("`serve(...).serve` (with `tg.start`)", GRACEFUL),
    "KeyboardInterrupt": ("leaving `serve()` by `KeyboardInterrupt`", ABORTED),
}


def test_the_table_says_what_the_tests_check() -> None:
    rows = table_rows()
    for row, seen in SCENARIOS.values():
        assert row in rows, f"no row {row!r} in {CONCURRENCY.name}"
        if seen == GRACEFUL:
            assert "1001, after a closing handshake" in rows[row] or (
                "the same graceful shutdown" in rows[row]
            ), rows[row]
        else:
            assert "no closing handshakes" in rows[row], rows[row]
            assert "aborted" in rows[row], rows[row]


@asynccontextmanager
async def connected_client(
    port: int, closed: list[ConnectionClosed], task_group: anyio.abc.TaskGroup
) -> AsyncIterator[None]:
    """A client connected to ``port``, in ``task_group``, recording how it ends."""
    opened = anyio.Event()

    async def client() -> None:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            opened.set()
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                closed.append(exc)

    task_group.start_soon(client)
    await opened.wait()
    yield


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_leaving_serve(scenario: str) -> None:
    closed: list[ConnectionClosed] = []
    handlers: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.wait_closed()
        finally:
            handlers.append("done")

    async def run_server(
        until: Callable[[Server], Awaitable[None]], task_group: anyio.abc.TaskGroup
    ) -> None:
        async with (
            serve(handler, "127.0.0.1", 0) as server,
            connected_client(server.port, closed, task_group),
        ):
            await anyio.wait_all_tasks_blocked()
            await until(server)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as clients:
            if scenario == "exit":
                await run_server(leave_normally, clients)
            elif scenario == "cancelled":
                with anyio.CancelScope() as scope:

                    async def cancel(server: Server) -> None:
                        scope.cancel()
                        await anyio.sleep_forever()

                    await run_server(cancel, clients)
                assert scope.cancelled_caught
            elif scenario == "serve_forever":
                with anyio.CancelScope() as scope:

                    async def forever(server: Server) -> None:
                        scope.cancel()
                        await server.serve_forever()

                    await run_server(forever, clients)
                assert scope.cancelled_caught
            elif scenario == "task_group_start":
                async with anyio.create_task_group() as servers:
                    server = await servers.start(serve(handler, "127.0.0.1", 0).serve)
                    async with connected_client(server.port, closed, clients):
                        await anyio.wait_all_tasks_blocked()
                        servers.cancel_scope.cancel()
            else:
                interrupt = KeyboardInterrupt()

                async def interrupted(server: Server) -> None:
                    raise interrupt

                with pytest.raises(KeyboardInterrupt) as excinfo:
                    await run_server(interrupted, clients)
                assert excinfo.value is interrupt
    [exc] = closed
    assert str(exc) == SCENARIOS[scenario][1]
    if SCENARIOS[scenario][1] == GRACEFUL:
        assert type(exc) is ConnectionClosedOK
    else:
        assert type(exc) is ConnectionClosedError
    assert handlers == ["done"]
