"""`broadcast`: one message to many connections, framed once, never held back by a slow peer.

The connections run over in-memory streams from `anyws.testing`: a peer that stops
reading is a lockstep stream whose delivery is paused (its writer then blocks, as on a
full TCP socket), and a `Recording` stream keeps the bytes written on the wire. Slow
consumer tests run in real time on every backend, and in virtual time on trio
(``@pytest.mark.autojump``) with the default ``drain_timeout``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import anyws
from anyws import (
    ClientConnection,
    ConcurrencyError,
    Connection,
    ConnectionClosedError,
    ServerConnection,
    State,
    broadcast,
)
from anyws.sansio import Opcode
from anyws.sansio._frames import serialize_frame
from anyws.testing import connection_pair, lockstep_stream_pair, memory_stream_pair
from tests.conftest import MS


if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

TIMEOUT = 10_000 * MS

#: How early asyncio may run a timer: up to its clock's resolution (1 ns on Linux).
EARLY = 1e-6

#: No keepalive pings: the tests count every byte written.
OPTIONS = {"ping_interval": None}


class Recording(anyio.abc.ByteStream):
    """A byte stream that keeps a copy of everything written through it."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.sent = bytearray()

    async def send(self, item: bytes) -> None:
        await self.stream.send(item)
        self.sent += item

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.stream.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.stream.extra_attributes


async def open_pairs(
    stack: AsyncExitStack, count: int, **options: Any
) -> list[tuple[ClientConnection, ServerConnection, Recording, Recording]]:
    """Open ``count`` client/server pairs; return them with their recorded streams."""
    pairs = []
    for _ in range(count):
        client_stream, server_stream = memory_stream_pair()
        client_rec, server_rec = Recording(client_stream), Recording(server_stream)
        client, server = await stack.enter_async_context(
            connection_pair(
                streams=(client_rec, server_rec),
                client_options={**OPTIONS, **options},
                server_options={**OPTIONS, **options},
            )
        )
        del client_rec.sent[:], server_rec.sent[:]  # Forget the handshake.
        pairs.append((client, server, client_rec, server_rec))
    return pairs


async def written(connection: Connection) -> None:
    """Wait until the connection's writer has written everything queued (bound it by a timeout)."""
    while connection._engine.out or connection._engine.writing:
        await anyio.lowlevel.checkpoint()


# Framing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "text", "opcode", "payload", "received"),
    [
        ("café", None, Opcode.TEXT, "café".encode(), "café"),
        (b"\x00\xff", None, Opcode.BINARY, b"\x00\xff", b"\x00\xff"),
        (bytearray(b"ab"), None, Opcode.BINARY, b"ab", b"ab"),
        (memoryview(b"ab"), True, Opcode.TEXT, b"ab", "ab"),
        ("ab", False, Opcode.BINARY, b"ab", b"ab"),
        ("x" * 70_000, None, Opcode.TEXT, b"x" * 70_000, "x" * 70_000),
    ],
    ids=["str", "bytes", "bytearray", "memoryview-as-text", "str-as-binary", "64-bit-length"],
)
async def test_same_bytes_on_every_server_connection(
    message: Any, text: bool | None, opcode: Opcode, payload: bytes, received: Any
) -> None:
    expected = serialize_frame(opcode, payload)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            pairs = await open_pairs(stack, 3, compression=None)
            broadcast([server for _, server, _, _ in pairs], message, text=text)
            for client, server, _, server_rec in pairs:
                assert await client.recv() == received
                await written(server)
                assert bytes(server_rec.sent) == expected


async def test_framed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyws._broadcast

    calls = []

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(args)
        return serialize_frame(*args, **kwargs)

    monkeypatch.setattr(anyws._broadcast, "serialize_frame", counting)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            pairs = await open_pairs(stack, 4)
            broadcast([server for _, server, _, _ in pairs], "hello")
            for client, _, _, _ in pairs:
                assert await client.recv() == "hello"
    assert calls == [(Opcode.TEXT, b"hello")]


async def test_compressed_connections_get_it_uncompressed() -> None:
    message = "compress me, please " * 50
    plain = serialize_frame(Opcode.TEXT, message.encode())
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            [(c1, s1, _, r1), (c2, s2, _, r2)] = await open_pairs(stack, 2, compression="deflate")
            (c3, s3, _, r3), *_ = await open_pairs(stack, 1, compression=None)
            assert s1._deflate() is not None
            assert s3._deflate() is None
            # send() compresses, and primes the compression context on s1.
            await s1.send(message)
            assert await c1.recv() == message
            await written(s1)
            assert r1.sent[0] & 0x40  # RSV1: compressed
            assert len(r1.sent) < len(plain) // 4
            del r1.sent[:]

            broadcast([s1, s2, s3], message)
            for client, server, rec in [(c1, s1, r1), (c2, s2, r2), (c3, s3, r3)]:
                assert await client.recv() == message
                await written(server)
                assert bytes(rec.sent) == plain  # RSV1 clear: uncompressed
                del rec.sent[:]

            # The compression context is intact on both ends: the next message
            # sent with send() is compressed, with context takeover, and decodes.
            await s1.send(message)
            assert await c1.recv() == message
            await written(s1)
            assert r1.sent[0] & 0x40
            assert len(r1.sent) < 16


async def test_client_connections_mask_each_frame() -> None:
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            pairs = await open_pairs(stack, 2)
            broadcast([client for client, _, _, _ in pairs], "hi")
            frames = []
            for client, server, client_rec, _ in pairs:
                assert await server.recv() == "hi"
                await written(client)
                frame = bytes(client_rec.sent)
                assert frame[:2] == b"\x81\x82"  # FIN + TEXT, MASK + length 2, RSV1 clear
                frames.append(frame)
            assert frames[0][2:6] != frames[1][2:6]  # Each its own masking key.


# Skipping ----------------------------------------------------------------------


def test_unsupported_message_type() -> None:
    with pytest.raises(TypeError, match=r"^data must be str or bytes$"):
        broadcast([], 42)  # type: ignore[arg-type]


async def test_skips_connections_not_open(caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.DEBUG, "anyws"):
        async with AsyncExitStack() as stack:
            [(c1, s1, _, r1), (c2, s2, _, _)] = await open_pairs(stack, 2)
            await c1.close()
            assert s1.state is State.CLOSED
            del r1.sent[:]
            broadcast([s1, s2], "hello", raise_exceptions=True)
            assert await c2.recv() == "hello"
            assert r1.sent == b""
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def fragmented(connection: Connection, gate: anyio.Event) -> None:
    async def fragments() -> AsyncIterator[str]:
        yield "frag"
        await gate.wait()
        yield "mented"

    await connection.send(fragments())


async def test_skips_fragmented_message_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    gate = anyio.Event()
    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.WARNING, "anyws"):
        async with AsyncExitStack() as stack:
            [(c1, s1, _, _), (c2, s2, _, _)] = await open_pairs(stack, 2)
            async with anyio.create_task_group() as tg:
                tg.start_soon(fragmented, s1, gate)
                await anyio.wait_all_tasks_blocked()
                broadcast([s1, s2], "broadcast")
                gate.set()
            assert await c1.recv() == "fragmented"
            assert await c2.recv() == "broadcast"
    assert [r.getMessage() for r in caplog.records] == [
        "skipped broadcast: sending a fragmented message"
    ]


async def test_skips_fragmented_message_raise_exceptions() -> None:
    gate = anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            [(c1, s1, _, _), (c2, s2, _, _)] = await open_pairs(stack, 2)
            async with anyio.create_task_group() as tg:
                tg.start_soon(fragmented, s1, gate)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(ExceptionGroup) as excinfo:
                    broadcast([s1, s2], "broadcast", raise_exceptions=True)
                gate.set()
            assert str(excinfo.value) == "skipped broadcast (1 sub-exception)"
            [exc] = excinfo.value.exceptions
            assert isinstance(exc, ConcurrencyError)
            assert str(exc) == "sending a fragmented message"
            # The others got it all the same.
            assert await c2.recv() == "broadcast"
            assert await c1.recv() == "fragmented"


async def test_write_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("boom")

    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.WARNING, "anyws"):
        async with AsyncExitStack() as stack:
            [(_, s1, _, _), (c2, s2, _, _)] = await open_pairs(stack, 2)
            monkeypatch.setattr(s1, "_send_broadcast", fail)
            broadcast([s1, s2], "a")
            with pytest.raises(ExceptionGroup) as excinfo:
                broadcast([s1, s2], "b", raise_exceptions=True)
            assert await c2.recv() == "a"
            assert await c2.recv() == "b"
    [exc] = excinfo.value.exceptions
    assert isinstance(exc, RuntimeError)
    assert str(exc) == "failed to write message"
    assert isinstance(exc.__cause__, OSError)
    assert [r.getMessage() for r in caplog.records] == [
        "skipped broadcast: failed to write message: OSError: boom"
    ]


# Slow consumers ----------------------------------------------------------------


async def slow_consumer_closed(drain_timeout: float | None, tolerance: float) -> None:
    """One peer stops reading: the others get every message, and it is closed with 1013."""
    message = "x" * 20_000  # Two of them exceed write_limit (32 KiB).
    slow_client_stream, slow_server_stream = lockstep_stream_pair()
    async with AsyncExitStack() as stack:
        slow_client, slow_server = await stack.enter_async_context(
            connection_pair(
                streams=(slow_client_stream, slow_server_stream),
                client_options=OPTIONS,
                server_options=OPTIONS,
            )
        )
        fast = await open_pairs(stack, 2)
        servers = [slow_server] + [server for _, server, _, _ in fast]

        slow_server_stream.paused = True  # The slow client stops reading.
        broadcast(servers, message, drain_timeout=drain_timeout)
        await anyio.wait_all_tasks_blocked()
        assert slow_server._engine.writing  # Stuck: its writer waits for the client to read.
        start = anyio.current_time()
        broadcast(servers, message, drain_timeout=drain_timeout)
        broadcast(servers, "end", drain_timeout=drain_timeout)

        # The slow one holds nobody back.
        for client, _, _, _ in fast:
            assert [await client.recv() for _ in range(3)] == [message, message, "end"]
        assert slow_server.state is State.OPEN

        await slow_server.wait_closed()
        elapsed = anyio.current_time() - start
        timeout = 10 if drain_timeout is None else drain_timeout
        assert timeout - EARLY <= elapsed < timeout + tolerance
        with pytest.raises(ConnectionClosedError) as excinfo:
            await slow_server.recv()
        assert str(excinfo.value) == (
            "sent 1013 (try again later) slow consumer; no close frame received"
        )
        assert slow_server.close_code == 1006

        # The peer, reading again, finds the connection dropped.
        slow_server_stream.paused = False
        with pytest.raises(ConnectionClosedError) as excinfo:
            await slow_client.recv()
        assert str(excinfo.value) == "no close frame received or sent"

        # The others carry on.
        broadcast(servers, "after")
        for client, _, _, _ in fast:
            assert await client.recv() == "after"


async def test_slow_consumer_closed_after_drain_timeout() -> None:
    with anyio.fail_after(TIMEOUT):
        await slow_consumer_closed(drain_timeout=200 * MS, tolerance=5_000 * MS)


@pytest.mark.autojump
async def test_slow_consumer_closed_after_default_drain_timeout() -> None:
    with anyio.fail_after(60):
        await slow_consumer_closed(drain_timeout=10, tolerance=0.001)


@pytest.mark.autojump
async def test_slow_but_reading_consumer_survives() -> None:
    """A peer that falls behind but catches up within drain_timeout stays connected."""
    message = "x" * 20_000
    client_stream, server_stream = lockstep_stream_pair()
    with anyio.fail_after(60):
        async with connection_pair(
            streams=(client_stream, server_stream), client_options=OPTIONS, server_options=OPTIONS
        ) as (client, server):
            for _ in range(5):
                server_stream.paused = True
                broadcast([server], message)
                broadcast([server], message)
                assert server._engine.out_size > server.write_limit
                await anyio.sleep(9)  # Behind for 9 s out of 10...
                server_stream.paused = False  # ... then catches up.
                assert [await client.recv() for _ in range(2)] == [message, message]
                await written(server)
            assert server.state is State.OPEN
            assert server._engine._drain_deadline == float("inf")


async def test_memory_bounded_by_max_buffer() -> None:
    """Broadcasting faster than a peer reads buffers at most max_buffer plus one message."""
    message = b"y" * 4096
    max_buffer = 64 * 1024
    count = 100
    slow_client_stream, slow_server_stream = lockstep_stream_pair()
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            slow_client, slow_server = await stack.enter_async_context(
                connection_pair(
                    streams=(slow_client_stream, slow_server_stream),
                    client_options=OPTIONS,
                    server_options=OPTIONS,
                )
            )
            [(fast_client, fast_server, _, _)] = await open_pairs(stack, 1, max_queue=None)
            slow_server_stream.paused = True
            peak = 0
            for _ in range(count):
                broadcast(
                    [slow_server, fast_server], message, drain_timeout=None, max_buffer=max_buffer
                )
                peak = max(peak, slow_server._engine.out_size)
                await written(fast_server)
            assert max_buffer < peak <= max_buffer + len(message) + 4
            assert slow_server.state is not State.OPEN
            assert slow_server.protocol.close_sent is not None
            assert str(slow_server.protocol.close_sent) == "1013 (try again later) slow consumer"
            # The fast one got all of it.
            for _ in range(count):
                assert await fast_client.recv() == message
            # The slow one, reading again, gets what was queued, then the close frame.
            slow_server_stream.paused = False
            for _ in range(peak // (len(message) + 4)):
                assert await slow_client.recv() == message
            with pytest.raises(ConnectionClosedError) as excinfo:
                await slow_client.recv()
            assert str(excinfo.value) == (
                "received 1013 (try again later) slow consumer; "
                "then sent 1013 (try again later) slow consumer"
            )


async def test_relay_to_every_client_over_tcp() -> None:
    """The handler of docs/howto/broadcast.md, over real TCP on 127.0.0.1."""

    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            broadcast(connection.server.connections, message)  # type: ignore[union-attr]

    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(handler, "127.0.0.1", 0) as server, AsyncExitStack() as stack:
            uri = f"ws://127.0.0.1:{server.port}/"
            clients = [await stack.enter_async_context(anyws.connect(uri)) for _ in range(3)]
            while len(server.connections) < 3:
                await anyio.wait_all_tasks_blocked()
            await clients[0].send("hello")
            for client in clients:
                assert await client.recv() == "hello"
            await clients[2].send(b"\x00")
            for client in clients:
                assert await client.recv() == b"\x00"


async def recv_until_closed(connection: Connection) -> int:
    """Receive until the connection closes; return how many messages came."""
    count = 0
    try:
        while True:
            await connection.recv()
            count += 1
    except ConnectionClosedError:
        return count


async def test_slow_consumer_over_tcp() -> None:
    """A client that stops reading, over real TCP: the kernel's buffers fill, then 1013."""
    message = b"z" * 16384  # Under write_limit: a client that keeps up never falls behind.
    drain_timeout = 500 * MS

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(handler, "127.0.0.1", 0, ping_interval=None) as server,
            # max_queue=1: once a message waits for recv(), the client stops reading.
            anyws.connect(f"ws://127.0.0.1:{server.port}/", max_queue=1) as slow_client,
            anyws.connect(f"ws://127.0.0.1:{server.port}/") as fast_client,
        ):
            while len(server.connections) < 2:
                await anyio.wait_all_tasks_blocked()
            [slow] = [
                c for c in server.connections if c.remote_address == slow_client.local_address
            ]
            sent = 0
            while slow._engine._drain_deadline == float(
                "inf"
            ):  # Until the kernel's buffers are full.
                broadcast(server.connections, message, drain_timeout=drain_timeout)
                sent += 1
                assert await fast_client.recv() == message
            deadline = slow._engine._drain_deadline
            await slow.wait_closed()
            # (asyncio may run a timer up to its clock's resolution early.)
            assert anyio.current_time() >= deadline - EARLY
            assert str(slow.protocol.close_sent) == "1013 (try again later) slow consumer"
            assert slow.close_code == 1006
            # The slow client gets what made it to its socket, then the connection drops.
            assert await recv_until_closed(slow_client) < sent
            # The fast one is still served.
            broadcast(server.connections, b"after")
            assert await fast_client.recv() == b"after"


async def test_written_at_once_on_asyncio(anyio_backend_name: str) -> None:
    """On anyws' asyncio transport, the frame is in the kernel when broadcast returns.

    As websockets' broadcast: one write per connection from the caller, not a hop
    through each connection's writer task (a task switch per connection per message).
    The client is a raw socket, read without yielding to the event loop.
    """
    if anyio_backend_name == "trio":
        pytest.skip("anyws' own transport runs on asyncio only")
    import socket

    opened: list[ServerConnection] = []
    done = anyio.Event()

    async def handler(connection: ServerConnection) -> None:
        opened.append(connection)
        await done.wait()

    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(handler, "127.0.0.1", 0, compression=None) as server:
            try:
                with socket.create_connection(("127.0.0.1", server.port)) as client:
                    client.sendall(request)
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        head += await anyio.to_thread.run_sync(client.recv, 1)
                    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
                    while not opened:
                        await anyio.wait_all_tasks_blocked()
                    client.setblocking(False)
                    for message in ("first", "second"):
                        broadcast(opened, message)
                        # No await since broadcast(): only a write from it can be there.
                        frame = serialize_frame(Opcode.TEXT, message.encode())
                        assert client.recv(100) == frame
            finally:
                done.set()
