"""Counters: `Protocol.messages_*` and `bytes_*`, and `Server.stats`.

The protocol's counters are checked in the sans-I/O core; the server's end to end on
every backend, over 127.0.0.1 TCP (anyws' asyncio transport on asyncio, anyio's socket
streams on trio), TLS (trustme) and a Unix socket, against what the clients themselves
counted. Waits are bounded by ``anyio.fail_after``; a loop of checkpoints waits for the
server to see what a client did.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import anyws
from anyws import Request, Response, ServerConnection, ServerStats
from anyws.sansio import Protocol, Side
from anyws.testing import connection_pair
from tests.conftest import MS


TIMEOUT = 10_000 * MS


# The protocol's counters ------------------------------------------------------------------


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_protocol_counts_messages_and_bytes(compression: bool) -> None:
    extensions: Any = ()
    if compression:
        from anyws.sansio.extensions import PerMessageDeflate

        extensions = [PerMessageDeflate(False, False, 15, 15)]
    client = Protocol(Side.CLIENT, extensions=extensions)
    server = Protocol(Side.SERVER, extensions=extensions)
    client.send_text(b"hello")
    client.send_binary(b"frag", fin=False)
    client.send_continuation(b"mented", fin=True)
    client.send_ping(b"ping")  # a control frame: bytes, not a message
    wire = b"".join(client.data_to_send())
    for byte in range(len(wire)):  # byte by byte: fragments are counted once
        server.receive_data(wire[byte : byte + 1])
    assert len(server.events_received()) == 4
    assert (client.messages_sent, client.bytes_sent) == (2, len(wire))
    assert (server.messages_received, server.bytes_received) == (2, len(wire))
    assert (client.messages_received, client.bytes_received) == (0, 0)
    pong = b"".join(server.data_to_send())
    assert server.bytes_sent == len(pong) > 0
    assert server.messages_sent == 0


async def test_connection_counts_over_memory_streams() -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    with anyio.fail_after(TIMEOUT):
        async with connection_pair(handler=echo) as (client, _):
            for message in ["one", b"two", "three"]:
                await client.send(message)
                assert await client.recv() == message
            assert client.protocol.messages_sent == 3
            assert client.protocol.messages_received == 3


# The server's counters ----------------------------------------------------------------


@pytest.fixture(params=["tcp", "tls", "unix"])
def transport(request: pytest.FixtureRequest) -> str:
    if request.param == "unix" and sys.platform == "win32":
        pytest.skip("no Unix sockets on Windows")
    return str(request.param)


Connect = Callable[..., Any]


@asynccontextmanager
async def server_for(
    transport: str, request: pytest.FixtureRequest, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[anyws.Server, Connect]]:
    """A server that runs ``handler``, and a function like `connect` to reach it."""
    handler = options.pop("handler")
    if transport == "unix":
        path = tmp_path / "ws.sock"
        async with anyws.unix_serve(handler, path, **options) as server:
            yield (
                server,
                lambda target="/", **kw: anyws.unix_connect(path, f"ws://localhost{target}", **kw),
            )
        return
    client_options: dict[str, Any] = {}
    scheme = "ws"
    if transport == "tls":
        server_ssl: ssl.SSLContext = request.getfixturevalue("server_ssl_context")
        client_options["ssl"] = request.getfixturevalue("client_ssl_context")
        options["ssl"] = server_ssl
        scheme = "wss"
    async with anyws.serve(handler, "127.0.0.1", 0, **options) as server:
        yield (
            server,
            lambda target="/", **kw: anyws.connect(
                f"{scheme}://127.0.0.1:{server.port}{target}", **client_options, **kw
            ),
        )


async def read_all(stream: anyio.abc.AnyByteStream) -> None:
    while True:
        await stream.receive()


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await anyio.lowlevel.checkpoint()


async def test_server_stats(transport: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "everyone":
                anyws.broadcast(ws.server.connections, "to all")
            else:
                await ws.send(message)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        if request.path == "/missing":
            return ws.respond(404, "Not Found\n")
        return None

    with anyio.fail_after(TIMEOUT):
        async with server_for(
            transport, request, tmp_path, handler=handler, process_request=process_request
        ) as (server, connect):
            assert server.stats() == ServerStats(
                connections=0,
                handshakes_accepted=0,
                handshakes_rejected={},
                handshakes_failed=0,
                messages_received=0,
                messages_sent=0,
                bytes_received=0,
                bytes_sent=0,
                close_codes={},
            )
            with pytest.raises(anyws.InvalidStatus):
                async with connect("/missing"):
                    pytest.fail("the handshake succeeded")
            async with connect() as alice, connect() as bob:
                await alice.send("hello")
                assert await alice.recv() == "hello"
                await bob.send(b"\x00" * 1000)
                assert await bob.recv() == b"\x00" * 1000
                await bob.send("everyone")
                assert await alice.recv() == "to all"
                assert await bob.recv() == "to all"
                stats = server.stats()
                assert stats.connections == 2
                assert stats.handshakes_accepted == 2
                assert stats.handshakes_rejected == {404: 1}
                assert stats.messages_received == 3
                assert stats.messages_sent == 4  # two echoes, a broadcast to two
                assert stats.bytes_received == alice.protocol.bytes_sent + bob.protocol.bytes_sent
                assert (
                    stats.bytes_sent == alice.protocol.bytes_received + bob.protocol.bytes_received
                )
                assert stats.close_codes == {}
                await bob.close(4000, "bye")
            await until(lambda: not server.connections)
            stats = server.stats()
            assert stats.connections == 0
            assert stats.close_codes == {1000: 1, 4000: 1}
            assert stats.messages_received == 3
            assert stats.messages_sent == 4


async def test_failed_handshakes_are_counted(
    transport: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async def nothing(ws: ServerConnection) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with server_for(transport, request, tmp_path, handler=nothing, open_timeout=None) as (
            server,
            _,
        ):
            address = server.sockets[0]
            # A client that connects and leaves without a request (a TCP health check).
            if transport == "unix":
                stream: anyio.abc.AnyByteStream = await anyio.connect_unix(address)
            else:
                stream = await anyio.connect_tcp(*address[:2])
            await stream.aclose()
            await until(lambda: server.stats().handshakes_failed == 1)
            # A request that isn't a WebSocket handshake: 426 (400 over TLS: no TLS).
            if transport == "unix":
                stream = await anyio.connect_unix(address)
            else:
                stream = await anyio.connect_tcp(*address[:2])
            async with stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await read_all(stream)
            if transport == "tls":
                await until(lambda: server.stats().handshakes_failed == 2)
                assert server.stats().handshakes_rejected == {}
            else:
                await until(lambda: server.stats().handshakes_rejected == {426: 1})
                assert server.stats().handshakes_failed == 1
            assert server.stats().handshakes_accepted == 0
