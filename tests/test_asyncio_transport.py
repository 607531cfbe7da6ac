"""anyws' own asyncio transport (anyws/_asyncio.py): chosen on asyncio, anyio's semantics."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import anyio
import anyio.abc
import pytest

from anyws import ClientConnection, ConnectionClosedError, ServerConnection, connect, serve
from anyws._asyncio import AsyncioStream, adopt, connect_tcp, running_loop, serve_natively
from tests.conftest import MS, unnamed
from tests.test_client_server import raw_server, read_request, switching_protocols


TIMEOUT = 10_000 * MS


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_chosen_on_asyncio_only(anyio_backend_name: str) -> None:
    """connect() and serve() run TCP on AsyncioStream on asyncio, on anyio's stream on trio."""
    kinds: list[bool] = []

    async def handler(ws: ServerConnection) -> None:
        kinds.append(isinstance(ws.transport, AsyncioStream))
        await echo(ws)

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler, "127.0.0.1", 0, compression=None) as server,
            connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            kinds.append(isinstance(ws.transport, AsyncioStream))
            assert ws.remote_address == ("127.0.0.1", server.port)
            assert ws.local_address[0] == "127.0.0.1"
    assert kinds == [anyio_backend_name == "asyncio"] * 2


def test_under_bare_asyncio_run() -> None:
    """Outside anyio.run: pongs and the close handshake are handled in the transport's callbacks."""

    async def main() -> tuple[float, int | None]:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                latency = await (await ws.ping())
            await server.aclose()
        return latency, ws.close_code

    latency, close_code = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert latency >= 0
    assert close_code == 1000


async def stream_pair() -> tuple[AsyncioStream, socket.socket]:
    """An AsyncioStream and the plain socket at the other end (asyncio and uvloop only)."""
    if running_loop() is None:
        pytest.skip("AsyncioStream runs on asyncio")
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        client = await anyio.connect_tcp("127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()
    finally:
        listener.close()
    stream = await adopt(client)
    assert isinstance(stream, AsyncioStream)
    peer.setblocking(False)
    return stream, peer


async def test_cancelled_receive_loses_nothing() -> None:
    stream, peer = await stream_pair()
    try:
        with anyio.move_on_after(50 * MS) as scope:
            await stream.receive()
        assert scope.cancelled_caught
        peer.send(b"after the timeout")
        with anyio.fail_after(TIMEOUT):
            assert await stream.receive() == b"after the timeout"
    finally:
        peer.close()
        await stream.aclose()


async def test_receive_splits_at_max_bytes_and_joins_reads() -> None:
    stream, peer = await stream_pair()
    try:
        peer.send(b"abc")
        peer.send(b"defg")
        with anyio.fail_after(TIMEOUT):
            data = b""
            while len(data) < 7:
                chunk = await stream.receive(5)
                assert 0 < len(chunk) <= 5
                data += chunk
        assert data == b"abcdefg"
    finally:
        peer.close()
        await stream.aclose()


async def test_end_of_stream_and_closed() -> None:
    stream, peer = await stream_pair()
    peer.send(b"last")
    peer.shutdown(socket.SHUT_WR)
    with anyio.fail_after(TIMEOUT):
        assert await stream.receive() == b"last"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
    await stream.send(b"half-closed: still writable")
    await stream.send_eof()
    with anyio.fail_after(TIMEOUT):
        received = b""
        while True:
            await anyio.wait_readable(peer)
            chunk = peer.recv(100)
            if not chunk:
                break
            received += chunk
    assert received == b"half-closed: still writable"
    peer.close()
    await stream.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send(b"x")


async def test_reset_is_broken_resource() -> None:
    stream, peer = await stream_pair()
    # SO_LINGER 0: close() resets the connection.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()
    with anyio.fail_after(TIMEOUT), pytest.raises(anyio.BrokenResourceError) as excinfo:
        await stream.receive()
    assert isinstance(excinfo.value.__cause__, ConnectionResetError)
    await stream.aclose()


async def test_send_waits_for_the_kernel_and_is_cancellable() -> None:
    """send() returns once the kernel took the bytes; cancelled meanwhile, they still go out."""
    stream, peer = await stream_pair()
    try:
        big = b"x" * 2**24  # more than the socket buffers on both ends
        with anyio.move_on_after(50 * MS) as scope:
            await stream.send(big)
        assert scope.cancelled_caught  # nobody reads: it waited
        received = 0
        with anyio.fail_after(TIMEOUT):
            while received < len(big):
                await anyio.wait_readable(peer)
                received += len(peer.recv(2**20))
        assert received == len(big)
    finally:
        peer.close()
        await stream.aclose()


# The keepalive over TCP: timers on anyws' asyncio transport, a task elsewhere.


class _Pongs(logging.Handler):
    """Counts the keepalive pongs that a connection's debug log reports."""

    def __init__(self, count: int) -> None:
        super().__init__(logging.DEBUG)
        self.latencies: list[float] = []
        self.count = count
        self.done = anyio.Event()
        self.connection: ClientConnection | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = unnamed(record.getMessage())
        if message == "% received keepalive pong" and self.connection is not None:
            self.latencies.append(self.connection.latency)
            if len(self.latencies) == self.count:
                self.done.set()


async def test_keepalive_pings_and_measures_latency() -> None:
    logger = logging.getLogger("test_keepalive_pings_and_measures_latency")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    pongs = _Pongs(3)
    logger.addHandler(pongs)

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server,
            connect(
                f"ws://127.0.0.1:{server.port}",
                compression=None,
                ping_interval=20 * MS,
                ping_timeout=TIMEOUT,
                logger=logger,
            ) as ws,
        ):
            pongs.connection = ws
            await pongs.done.wait()  # three keepalive pings answered
            assert all(latency >= 0 for latency in pongs.latencies)
            await ws.send("still open")
            assert await ws.recv() == "still open"


async def test_keepalive_timeout_over_tcp() -> None:
    """A peer that never answers pings: failed with 1011 after ping_interval + ping_timeout."""
    done = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await stream.send(switching_protocols(await read_request(stream)))
        await done.wait()  # read nothing, answer nothing

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            async with connect(
                f"ws://127.0.0.1:{port}",
                compression=None,
                ping_interval=20 * MS,
                ping_timeout=20 * MS,
            ) as ws:
                with pytest.raises(ConnectionClosedError) as excinfo:
                    await ws.recv()
            assert str(excinfo.value) == (
                "sent 1011 (internal error) keepalive ping timeout; no close frame received"
            )
            done.set()


async def test_send_waits_for_a_slow_reader_again_after_a_timeout() -> None:
    """send() over write_limit waits; cancelled, the next send() waits again; nothing is lost."""
    reading = anyio.Event()
    received: list[bytes] = []
    big = b"x" * 2**25  # more than the kernel's buffers (up to 10 MB on loopback)

    async def handler(ws: ServerConnection) -> None:
        await reading.wait()
        for _ in range(3):
            message = await ws.recv()
            assert isinstance(message, bytes)
            received.append(message)

    with anyio.fail_after(TIMEOUT):
        async with (
            # max_queue=1: once a message waits for recv(), the server stops reading.
            serve(handler, "127.0.0.1", 0, compression=None, max_size=None, max_queue=1) as server,
            connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws,
        ):
            await ws.send(big)
            for _ in range(2):
                with anyio.move_on_after(100 * MS) as scope:
                    await ws.send(big)
                assert scope.cancelled_caught
            reading.set()
            await ws.wait_closed()
    assert received == [big, big, big]


async def test_adopt_keeps_the_connection_open_both_ways() -> None:
    """adopt() closes anyio's descriptor only: the peer sees no end of stream (anyio < 4.16's
    aclose() half-closed the connection, and every handshake on asyncio failed)."""
    stream, peer = await stream_pair()
    peer.settimeout(TIMEOUT)  # bounds the blocking reads below, made in a worker thread
    try:
        with anyio.fail_after(TIMEOUT):
            await stream.send(b"request")
            received = b""
            while len(received) < len(b"request"):
                chunk = await anyio.to_thread.run_sync(peer.recv, 100)
                assert chunk, f"the peer read the end of the stream after {received!r}"
                received += chunk
            assert received == b"request"
            peer.sendall(b"response")
            received = b""
            while len(received) < len(b"response"):
                received += await stream.receive()
            assert received == b"response"
    finally:
        peer.close()
        await stream.aclose()


async def test_ping_latency_is_never_rounded_to_zero() -> None:
    """Round trips over loopback TCP measure more than 0.0 on every backend: uvloop's clock
    ticks in milliseconds, so latency was timed with it as 0.0 ("no pong yet")."""
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.port}") as ws,
        ):
            latencies = [await (await ws.ping()) for _ in range(5)]
            assert all(0 < latency < 1 for latency in latencies), latencies
            assert ws.latency == latencies[-1]


async def test_connect_by_name_and_by_address(anyio_backend_name: str) -> None:
    """To an address, the loop's create_connection; to a name, anyio's connect_tcp + adopt."""
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, compression=None) as server:
            for host in ("127.0.0.1", "localhost"):
                stream = await connect_tcp(host, server.port)
                try:
                    assert isinstance(stream, AsyncioStream) is (anyio_backend_name == "asyncio")
                    assert stream.extra(anyio.abc.SocketAttribute.remote_address) == (
                        "127.0.0.1",
                        server.port,
                    )
                    await stream.send(b"GET / HTTP/1.1\r\n\r\n")
                    # Not a WebSocket handshake: the server answers 400, then closes.
                    assert (await stream.receive()).startswith(b"HTTP/1.1 400 ")
                finally:
                    await stream.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_connect_refused_keeps_its_type(host: str) -> None:
    """A refused connection raises ConnectionRefusedError with its errno, on every backend,
    by address (the loop's create_connection) and by name (anyio's connect_tcp)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionRefusedError) as excinfo:
            await connect_tcp(host, port)
    assert excinfo.value.errno == errno.ECONNREFUSED


async def test_native_server_accept_and_close() -> None:
    """NativeServer: accept() returns what the loop accepted; close() aborts the rest."""
    if running_loop() is None:
        pytest.skip("NativeServer runs on asyncio")
    listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    native = await serve_natively(listener, 16)
    assert native is not None
    with anyio.fail_after(TIMEOUT):
        first = await anyio.connect_tcp("127.0.0.1", port)
        second = await anyio.connect_tcp("127.0.0.1", port)
        try:
            accepted = await native.accept()
            assert isinstance(accepted, AsyncioStream)
            await first.send(b"ping")
            assert await accepted.receive() == b"ping"
            await accepted.aclose()
            # The second connection wasn't accepted by accept(): whether the loop
            # took it already or not, close() ends it, and accept() raises.
            native.close()
            native.close()  # idempotent
            with pytest.raises(anyio.ClosedResourceError):
                await native.accept()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await second.receive()
        finally:
            await first.aclose()
            await second.aclose()
            await listener.aclose()


async def test_idle_connection_keeps_no_inbox_deque() -> None:
    """Once its messages are taken, a connection's inbox holds no deque (760 bytes)."""
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, compression=None) as server,
            connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            assert ws._inbox._frames is None  # type: ignore[attr-defined]
