"""Every frame log line names its connection, on the server as on the client.

Runs on each backend, over 127.0.0.1 TCP (anyws' asyncio transport on asyncio, anyio's
socket streams on trio) and in-memory streams (`anyws.testing.connection_pair`).
"""

from __future__ import annotations

import logging

import anyio
import pytest

import anyws
from anyws import ServerConnection
from anyws.testing import connection_pair
from tests.conftest import MS, unnamed


TIMEOUT = 10_000 * MS

TRACE = ("< ", "> ", "= ", "% ", "! ", "- ", "x ")


def name(connection: anyws.Connection) -> str:
    return connection.id.hex[:8]


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_server_frame_lines_name_their_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(echo, "127.0.0.1", 0, compression=None) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            async with anyws.connect(uri) as alice, anyws.connect(uri) as bob:
                await alice.send("from alice")
                assert await alice.recv() == "from alice"
                await bob.send("from bob")
                assert await bob.recv() == "from bob"
                assert len(server.connections) == 2
                by_id = {name(c): c for c in (*server.connections, alice, bob)}
    assert len(by_id) == 4
    traced = [
        record
        for record in caplog.records
        if record.name.startswith("anyws") and unnamed(record.getMessage())[:2] in TRACE
    ]
    # All but the first line of each connection (its CONNECTING state, logged by the
    # protocol before the connection exists) are named, and carry the connection.
    unnamed_lines = [r.getMessage() for r in traced if not hasattr(r, "websocket")]
    assert unnamed_lines == ["= connection is CONNECTING"] * 4
    for record in traced:
        if hasattr(record, "websocket"):
            prefix, _, rest = record.getMessage().partition(" ")
            assert by_id[prefix] is record.websocket
            assert rest[:2] in TRACE
    # Each echo is logged under the server connection that sent it.
    sent = {
        record.websocket: unnamed(record.getMessage())
        for record in traced
        if record.name == "anyws.server" and unnamed(record.getMessage()).startswith("> TEXT")
    }
    assert sorted(sent.values()) == [
        "> TEXT 'from alice' [10 bytes]",
        "> TEXT 'from bob' [8 bytes]",
    ]


async def test_other_lines_keep_their_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws")

    async def leave(ws: ServerConnection) -> None:
        await ws.recv()  # the client closes: ConnectionClosedOK

    with anyio.fail_after(TIMEOUT):
        async with connection_pair(handler=leave) as (client, server):
            assert client.logger is not logging.getLogger("anyws.client")
    [record] = [r for r in caplog.records if r.getMessage().startswith("connection closed: ")]
    assert record.getMessage() == "connection closed: received 1000 (OK); then sent 1000 (OK)"
    assert record.websocket is server  # type: ignore[attr-defined]


async def test_no_adapter_without_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="anyws")
    with anyio.fail_after(TIMEOUT):
        async with connection_pair() as (client, server):
            assert client.logger is logging.getLogger("anyws.client")
            assert server.logger is logging.getLogger("anyws.server")
