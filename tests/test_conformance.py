"""One conformance suite for every engine and transport a connection runs on.

Each test is written once against the ``make_pair`` fixture and runs over every
transport path a connection can take, on every backend of the matrix (asyncio, uvloop,
trio; see ``tests/conftest.py``):

- ``memory``: `anyws.testing.memory_stream_pair` (the task engine, unbounded buffers);
- ``lockstep``: `anyws.testing.lockstep_stream_pair` (the task engine, no buffer at all);
- ``tcp-asyncio-engine``: TCP on anyws' own asyncio transport, i.e. the asyncio engine
  (asyncio and uvloop only: it doesn't exist on trio);
- ``tcp-task-engine``: TCP on anyio's socket streams, i.e. the task engine;
- ``tls``: TLS over TCP (anyio's `TLSStream`, the task engine);
- ``unix``: a Unix socket (the task engine; not on Windows).

The fixture checks that each path runs the engine it names, so a change in how the
engine is chosen can't quietly shrink what this suite covers. Network tests use
127.0.0.1 and are bounded in time.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSStream

from anyws import ClientConnection, ConnectionClosedError, ConnectionClosedOK, ServerConnection
from anyws._asyncio import adopt
from anyws._asyncio_engine import AsyncioEngine
from anyws.exceptions import ConcurrencyError
from anyws.testing import connection_pair, lockstep_stream_pair, memory_stream_pair

from .conftest import MS


#: Bound on each test; generous, for slow machines.
TIMEOUT = 10

TRANSPORTS = ["memory", "lockstep", "tcp-asyncio-engine", "tcp-task-engine", "tls", "unix"]

Pair = tuple[ClientConnection, ServerConnection]
MakePair = Callable[..., AbstractAsyncContextManager[Pair]]
StreamPair = tuple[anyio.abc.AnyByteStream, anyio.abc.AnyByteStream]


async def _tcp_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with multi.listeners[0] as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await listener.accept()
    return client, server


async def _unix_pair(path: Path) -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    async with await anyio.create_unix_listener(path) as listener:
        client = await anyio.connect_unix(path)
        server = await listener.accept()
    return client, server


async def _tls_pair(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[TLSStream, TLSStream]:
    client_tcp, server_tcp = await _tcp_pair()
    streams: dict[str, TLSStream] = {}

    async def wrap_client() -> None:
        streams["client"] = await TLSStream.wrap(
            client_tcp, hostname="localhost", ssl_context=client_context, standard_compatible=False
        )

    async def wrap_server() -> None:
        streams["server"] = await TLSStream.wrap(
            server_tcp, server_side=True, ssl_context=server_context, standard_compatible=False
        )

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(wrap_client)
        task_group.start_soon(wrap_server)
    return streams["client"], streams["server"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, anyio_backend_name: str) -> str:
    """The transport path of the test: one of `TRANSPORTS`."""
    name: str = request.param
    if name == "tcp-asyncio-engine" and anyio_backend_name != "asyncio":
        pytest.skip("the asyncio engine runs on asyncio only")
    if name == "unix" and not hasattr(socket, "AF_UNIX"):  # pragma: no cover - Windows
        pytest.skip("no Unix sockets here")
    return name


@pytest.fixture
def make_pair(
    transport: str,
    tmp_path_factory: pytest.TempPathFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> MakePair:
    """``async with make_pair(**options) as (client, server)``: a connected pair.

    The options go to both sides (`anyws.connect` and `anyws.serve` options);
    ``client_options`` and ``server_options`` add to them for one side. Leaving the
    block checks that anyws logged no error: a background task that failed logs one.
    """

    async def streams() -> StreamPair:
        if transport == "memory":
            return memory_stream_pair()
        if transport == "lockstep":
            return lockstep_stream_pair()
        if transport == "tcp-asyncio-engine":
            client, server = await _tcp_pair()
            return await adopt(client), await adopt(server)
        if transport == "tcp-task-engine":
            return await _tcp_pair()
        if transport == "tls":
            return await _tls_pair(server_ssl_context, client_ssl_context)
        assert transport == "unix"
        # A short path: AF_UNIX paths are limited to about 100 bytes.
        path = tmp_path_factory.mktemp("u", numbered=True) / "s"
        if len(str(path)) > 100:  # pragma: no cover - a very deep temporary directory
            pytest.skip("the temporary directory's path is too long for a Unix socket")
        return await _unix_pair(path)

    @asynccontextmanager
    async def pair(
        *,
        client_options: dict[str, Any] | None = None,
        server_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncIterator[Pair]:
        defaults = {"close_timeout": 2, **options}
        async with connection_pair(
            streams=await streams(),
            client_options={**defaults, **(client_options or {})},
            server_options={**defaults, **(server_options or {})},
        ) as (client, server):
            on_asyncio_engine = transport == "tcp-asyncio-engine"
            for connection in (client, server):
                engine = connection._engine
                assert isinstance(engine, AsyncioEngine) == on_asyncio_engine, transport
            yield client, server
        errors = [
            record.getMessage()
            for record in caplog.records
            if record.name.startswith("anyws") and record.levelno >= logging.ERROR
        ]
        assert errors == []

    return pair


@pytest.fixture
def anyio_backend_name(anyio_backend: tuple[str, dict[str, Any]]) -> str:
    return anyio_backend[0]


# Messages ---------------------------------------------------------------------------------


async def test_messages_both_ways(make_pair: MakePair) -> None:
    """Text arrives as `str`, binary as `bytes`, in order, in both directions."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            await client.send("hello")
            await client.send(b"\x00\xff")
            await server.send("é" * 1000)
            assert await server.recv() == "hello"
            assert await server.recv() == b"\x00\xff"
            assert await client.recv() == "é" * 1000
            await server.send(bytearray(b"x" * 70_000))  # a 64-bit length
            assert await client.recv() == b"x" * 70_000


async def test_many_messages_in_order(make_pair: MakePair) -> None:
    """A burst of messages arrives whole and in order (no loss, no reordering)."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            async with anyio.create_task_group() as task_group:

                async def send_all() -> None:
                    for index in range(200):
                        await client.send(f"{index}:" + "x" * index)

                task_group.start_soon(send_all)
                received = [await server.recv() for _ in range(200)]
            assert received == [f"{index}:" + "x" * index for index in range(200)]


# Fragments --------------------------------------------------------------------------------


async def test_fragmented_message(make_pair: MakePair) -> None:
    """A message sent in fragments is one message to `recv`, and fragments to `recv_streaming`."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            await client.send(["frag", "men", "ted"])
            assert await server.recv() == "fragmented"

            async def fragments() -> AsyncIterator[bytes]:
                for chunk in (b"a", b"b", b"c"):
                    yield chunk

            await server.send(fragments())
            received = [fragment async for fragment in client.recv_streaming()]
            assert b"".join(received) == b"abc"
            assert all(isinstance(fragment, bytes) for fragment in received)


async def test_text_split_inside_a_character(make_pair: MakePair) -> None:
    """A UTF-8 character split between fragments is decoded whole."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            data = "€".encode()
            await client.send([data[:1], data[1:]], text=True)
            assert [fragment async for fragment in server.recv_streaming()] == ["", "€"]


# Ping and pong ----------------------------------------------------------------------------


async def test_ping_pong(make_pair: MakePair) -> None:
    """A ping is answered by the peer's connection itself; the latency is measured."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair(ping_interval=None) as (client, server):
            latency = await (await client.ping(b"data"))
            assert latency >= 0.0
            assert await (await server.ping()) >= 0.0
            await client.send("after the pings")
            assert await server.recv() == "after the pings"


async def test_keepalive_timeout(make_pair: MakePair) -> None:
    """A peer that doesn't answer the keepalive ping gets the connection failed with 1011.

    The server stops reading (its ``max_queue`` of one message is full), so the client's
    ping stays unread and unanswered.
    """
    with anyio.fail_after(TIMEOUT):
        async with make_pair(
            client_options={"ping_interval": 20 * MS, "ping_timeout": 20 * MS},
            server_options={"ping_interval": None, "max_queue": 1},
        ) as (client, server):
            await client.send("fills the queue")
            await client.send("stays unread")
            with pytest.raises(ConnectionClosedError) as raised:
                await client.recv()
            assert raised.value.sent is not None
            assert raised.value.sent.code == 1011
            assert raised.value.sent.reason == "keepalive ping timeout"
            assert raised.value.rcvd is None
            assert await server.recv() == "fills the queue"


# Caller timeouts and cancellation ---------------------------------------------------------


async def test_cancelled_recv_loses_nothing(make_pair: MakePair) -> None:
    """A `recv` cancelled by a timeout loses no message; the connection stays usable."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            with anyio.move_on_after(0) as scope:
                await client.recv()
            assert scope.cancelled_caught
            await server.send("later")
            assert await client.recv() == "later"
            await server.send("queued")
            await server.send("then this")
            await client.send("sync")  # the server's reply proves both arrived first
            assert await server.recv() == "sync"
            await server.send("done")
            received = []
            with anyio.move_on_after(0):
                # Cancelled before it takes a message, or returns one: never loses one.
                received.append(await client.recv())
            received += [await client.recv() for _ in range(3 - len(received))]
            assert received == ["queued", "then this", "done"]


async def test_cancelled_send_never_corrupts_the_stream(make_pair: MakePair) -> None:
    """A cancelled `send` has queued its frame whole: the stream stays in frame."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            with anyio.move_on_after(0):
                await client.send("cancelled")
            await client.send("next")
            assert await server.recv() == "cancelled"
            assert await server.recv() == "next"


async def test_concurrent_recv(make_pair: MakePair) -> None:
    """Two tasks in `recv` at once: the second gets `ConcurrencyError`."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server), anyio.create_task_group() as task_group:
            task_group.start_soon(client.recv)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ConcurrencyError):
                await client.recv()
            await server.send("for the first")


# Closing ----------------------------------------------------------------------------------


async def test_close_handshake(make_pair: MakePair) -> None:
    """`close` sends the code and reason; both sides end with them, OK."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            await server.send("last")
            await server.close(1001, "going away")
            assert await client.recv() == "last"
            with pytest.raises(ConnectionClosedOK) as raised:
                await client.recv()
            assert raised.value.rcvd is not None
            assert (raised.value.rcvd.code, raised.value.rcvd.reason) == (1001, "going away")
            await client.wait_closed()
            assert (client.close_code, client.close_reason) == (1001, "going away")
            assert (server.close_code, server.close_reason) == (1001, "going away")


async def test_lost_connection(make_pair: MakePair) -> None:
    """A transport closed without a closing handshake: the peer's `recv` raises, code 1006."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair() as (client, server):
            await anyio.aclose_forcefully(client.transport)
            with pytest.raises(ConnectionClosedError) as raised:
                await server.recv()
            assert str(raised.value) == "no close frame received or sent"
            await server.wait_closed()
            assert server.close_code == 1006


# Backpressure and limits ------------------------------------------------------------------


async def test_backpressure_loses_nothing(make_pair: MakePair) -> None:
    """With ``max_queue`` full, the reader stops; nothing is lost when `recv` catches up."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair(server_options={"max_queue": 2}, write_limit=1024) as (
            client,
            server,
        ):
            async with anyio.create_task_group() as task_group:

                async def send_all() -> None:
                    for index in range(100):
                        await client.send(bytes([index]) * 4096)

                task_group.start_soon(send_all)
                await anyio.wait_all_tasks_blocked()
                received = [await server.recv() for _ in range(100)]
            assert received == [bytes([index]) * 4096 for index in range(100)]


async def test_message_too_big(make_pair: MakePair) -> None:
    """A message over ``max_size`` fails the connection with 1009 on the wire."""
    with anyio.fail_after(TIMEOUT):
        async with make_pair(server_options={"max_size": 1000}) as (client, server):
            await client.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as raised:
                await client.recv()
            assert raised.value.rcvd is not None
            assert (raised.value.rcvd.code, raised.value.rcvd.reason) == (
                1009,
                "message exceeds limit of 1000 bytes",
            )
            with pytest.raises(ConnectionClosedError) as raised:
                await server.recv()
            assert raised.value.sent is not None
            assert raised.value.sent.code == 1009
