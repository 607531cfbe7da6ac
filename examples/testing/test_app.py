"""Tests of the greeter handler with ``anyws.testing``, on asyncio and trio.

Run them from the repository root with ``python -m pytest examples/testing/test_app.py``.
They need pytest, and trio for the trio runs; anyio's pytest plugin comes with anyio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import anyws
import anyws.testing
from examples.testing.app import greeter


# Every async test of this module runs through anyio's pytest plugin.
pytestmark = pytest.mark.anyio


# Run every async test on both backends (anyio's plugin runs them).
@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_greets() -> None:
    async with anyws.testing.connection_pair(handler=greeter) as (client, _):
        await client.send("Alice")
        with anyio.fail_after(1):
            assert await client.recv() == "Hello, Alice!"


@pytest.fixture
async def client() -> AsyncIterator[anyws.ClientConnection]:
    # anyio's plugin runs the setup and the teardown of an async generator fixture in
    # the same task, as a task group (and so connection_pair) requires.
    async with anyws.testing.connection_pair(handler=greeter) as (client, _):
        yield client


async def test_greets_twice(client: anyws.ClientConnection) -> None:
    for name in ["Alice", "Bob"]:
        await client.send(name)
        with anyio.fail_after(1):
            assert await client.recv() == f"Hello, {name}!"


async def test_empty_name_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async with anyws.testing.connection_pair(handler=greeter) as (client, _):
        await client.send("")
        with anyio.fail_after(1), pytest.raises(anyws.ConnectionClosedError) as exc_info:
            await client.recv()
    assert str(exc_info.value) == "received 1011 (internal error); then sent 1011 (internal error)"
    assert "connection handler failed" in caplog.text


@pytest.fixture
async def server() -> AsyncIterator[anyws.Server]:
    # Over real TCP: port 0 picks a free port; server.port tells which.
    async with anyws.serve(greeter, "127.0.0.1", 0) as server:
        yield server


async def test_over_tcp(server: anyws.Server) -> None:
    async with anyws.connect(f"ws://127.0.0.1:{server.port}/") as client:
        await client.send("Carol")
        with anyio.fail_after(1):
            assert await client.recv() == "Hello, Carol!"


async def test_vanished_client_trips_the_keepalive() -> None:
    client_stream, server_stream = anyws.testing.memory_stream_pair()
    server_options = {"ping_interval": 0.05, "ping_timeout": 0.05}
    async with anyws.testing.connection_pair(
        streams=(client_stream, server_stream), server_options=server_options
    ) as (_, server):
        client_stream.swallow = True  # the client's bytes (its pongs) get lost
        with anyio.fail_after(1), pytest.raises(anyws.ConnectionClosedError) as exc_info:
            await server.recv()
    assert "keepalive ping timeout" in str(exc_info.value)
