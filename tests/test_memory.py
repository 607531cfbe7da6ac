"""Memory bounds through real connections, against a hostile peer (issue 14).

Each test plays the hostile peer by hand (a sans-I/O protocol over a TCP socket)
against anyws as a server and as a client, on every backend and transport (anyws'
asyncio transport on asyncio and uvloop, anyio's streams on trio; TLS, on each),
and measures the peak of traced memory (`tracemalloc`) over the exchange: what the
whole process allocated, the hostile peer included. The bounds are those of
docs/topics/memory.md; before issue 14, each of these inputs cost tens or hundreds
of MiB.
"""

from __future__ import annotations

import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSStream

import anyws
from anyws.sansio import (
    ClientProtocol,
    Close,
    Frame,
    Opcode,
    Protocol,
    ServerProtocol,
    State,
)
from anyws.sansio._frames import serialize_frame
from anyws.sansio.extensions import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tests.sansio.helpers import peak_memory


TEXT, BINARY, CONT, PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING
MiB = 2**20
MASK = b"\x12\x34\x56\x78"

Handler = Callable[[anyws.Connection], Awaitable[None]]


class HostilePeer:
    """The other end of an anyws connection, under the test's control."""

    def __init__(self, stream: anyio.abc.ByteStream, protocol: Protocol, buffered: bytes) -> None:
        self.stream = stream
        self.protocol = protocol
        self.buffered = buffered

    def frame(
        self, opcode: int, data: bytes = b"", *, fin: bool = True, rsv1: bool = False
    ) -> bytes:
        """The bytes of a frame as this peer sends it (masked when it's the client)."""
        mask = MASK if isinstance(self.protocol, ClientProtocol) else None
        return serialize_frame(opcode, data, fin=fin, rsv1=rsv1, mask=mask)

    async def send_all(self, data: bytes) -> None:
        """Send ``data`` in writes of 64 KiB; stop quietly when anyws closes the stream."""
        view = memoryview(data)
        try:
            for i in range(0, len(view), 2**16):
                await self.stream.send(view[i : i + 2**16])
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    async def frames_until_close(self) -> list[Frame]:
        """Read what anyws sends until its close frame (included) or EOF."""
        protocol = self.protocol
        received: list[Frame] = []
        while True:
            for event in protocol.events_received():
                if isinstance(event, Frame):
                    received.append(event)
                    if event.opcode is Opcode.CLOSE:
                        return received
            try:
                protocol.receive_data(await self.stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return received

    async def close_frame(self, *, echo: bool = True) -> Close | None:
        """Read (and drop) what anyws sends until its close frame, or EOF.

        With ``echo``, answer the close frame (don't while sending in another task).
        """
        protocol = self.protocol
        data = self.buffered
        self.buffered = b""
        while True:
            if data:
                protocol.receive_data(data)
            while protocol.paused:
                protocol.events_received()
                protocol.receive_data(b"")
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    # Echo it (the closing handshake), if anyws still reads.
                    for chunk in protocol.data_to_send():
                        if chunk and echo:
                            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                                await self.stream.send(chunk)
                    return Close.parse(event.data)
            protocol.data_to_send()  # our pongs: nobody needs them
            try:
                data = await self.stream.receive(2**18)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return None


async def _handshake_as_client(
    stream: anyio.abc.ByteStream, port: int, deflate: bool
) -> HostilePeer:
    extensions = [ClientPerMessageDeflateFactory(client_max_window_bits=None)] if deflate else []
    protocol = ClientProtocol(f"ws://127.0.0.1:{port}", extensions=extensions, max_size=None)
    protocol.send_request(protocol.connect())
    for chunk in protocol.data_to_send():
        await stream.send(chunk)
    while protocol.state is State.CONNECTING:
        protocol.receive_data(await stream.receive())
    assert protocol.state is State.OPEN, protocol.handshake_exc
    protocol.events_received()
    return HostilePeer(stream, protocol, b"")


async def _handshake_as_server(stream: anyio.abc.ByteStream, deflate: bool) -> HostilePeer:
    extensions = [ServerPerMessageDeflateFactory()] if deflate else []
    protocol = ServerProtocol(extensions=extensions, max_size=None)
    while not protocol.events_received():
        protocol.receive_data(await stream.receive())
    assert protocol.handshake_exc is None
    request = protocol.request
    assert request is not None
    protocol.send_response(protocol.accept(request))
    for chunk in protocol.data_to_send():
        await stream.send(chunk)
    return HostilePeer(stream, protocol, b"")


TRANSPORTS = ["tcp", "tls"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def hostile_peer(
    role: str,
    handler: Handler,
    transport: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    *,
    deflate: bool = False,
    **options: Any,
) -> AsyncIterator[HostilePeer]:
    """Run anyws in ``role`` with ``handler``, and yield the peer that it talks to."""
    tls = transport == "tls"
    if role == "server":
        async with anyws.serve(
            handler,
            "127.0.0.1",
            0,
            ssl=server_ssl_context if tls else None,
            compression="deflate" if deflate else None,
            ping_interval=None,
            **options,
        ) as server:
            stream: anyio.abc.ByteStream = await anyio.connect_tcp("127.0.0.1", server.port)
            if tls:
                stream = await TLSStream.wrap(
                    stream, hostname="127.0.0.1", ssl_context=client_ssl_context
                )
            try:
                yield await _handshake_as_client(stream, server.port, deflate)
            finally:
                await anyio.aclose_forcefully(stream)
        return
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:

        async def run_client() -> None:
            async with anyws.connect(
                f"{'wss' if tls else 'ws'}://127.0.0.1:{port}",
                ssl=client_ssl_context if tls else None,
                compression="deflate" if deflate else None,
                ping_interval=None,
                **options,
            ) as websocket:
                await handler(websocket)

        tg.start_soon(run_client)
        accepted: anyio.abc.ByteStream = await listener.accept()
        if tls:
            accepted = await TLSStream.wrap(
                accepted, server_side=True, ssl_context=server_ssl_context
            )
        try:
            yield await _handshake_as_server(accepted, deflate)
        finally:
            await anyio.aclose_forcefully(accepted)


async def never_read(websocket: anyws.Connection) -> None:
    await websocket.wait_closed()


ROLES = ["server", "client"]


@pytest.mark.parametrize("role", ROLES)
async def test_endless_empty_fragments(
    role: str,
    transport: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """A message of 1,000,000 empty continuation frames fails with 1009 after 4,096."""
    async with hostile_peer(
        role, never_read, transport, server_ssl_context, client_ssl_context
    ) as peer:
        data = peer.frame(TEXT, b"", fin=False) + peer.frame(CONT, b"", fin=False) * 1_000_000
        with anyio.fail_after(30), peak_memory() as peak:
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer.send_all, data)
                close = await peer.close_frame(echo=False)
                tg.cancel_scope.cancel()
    assert close == Close(1009, "too many fragments")
    # 4,096 frames of at most 150 bytes, reads of 256 KiB, TLS and socket buffers.
    assert peak() < 4096 * 150 + 2 * MiB, peak()


@pytest.mark.parametrize("role", ROLES)
async def test_one_byte_fragments(
    role: str,
    transport: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """A 1 MiB message in 1-byte fragments fails with 1009 after 4,096 of them."""
    async with hostile_peer(
        role, never_read, transport, server_ssl_context, client_ssl_context
    ) as peer:
        data = peer.frame(BINARY, b"x", fin=False) + peer.frame(CONT, b"x", fin=False) * MiB
        with anyio.fail_after(30), peak_memory() as peak:
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer.send_all, data)
                close = await peer.close_frame(echo=False)
                tg.cancel_scope.cancel()
    assert close == Close(1009, "too many fragments")
    assert peak() < 4096 * 150 + 2 * MiB, peak()


@pytest.mark.parametrize("role", ROLES)
async def test_ping_flood(
    role: str,
    transport: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """200,000 pings of 125 bytes, not reading the pongs: 1008 once write_limit of them wait."""
    closed: list[anyws.ConnectionClosed] = []

    async def wait_for_close(websocket: anyws.Connection) -> None:
        try:
            await websocket.recv()
        except anyws.ConnectionClosed as exc:
            closed.append(exc)

    async with hostile_peer(
        role, wait_for_close, transport, server_ssl_context, client_ssl_context
    ) as peer:
        data = peer.frame(PING, b"p" * 125) * 200_000
        with anyio.fail_after(60), peak_memory() as peak:
            await peer.send_all(data)  # without reading
            close = await peer.close_frame()
    if transport == "tcp":
        assert close == Close(1008, "too many pings")
    # (Over TLS, the server closes the socket with our pings unread, so the kernel
    # may reset the connection and drop the close frame before we read it.)
    assert len(closed) == 1
    assert isinstance(closed[0], anyws.ConnectionClosedError)
    assert closed[0].sent == Close(1008, "too many pings")
    # write_limit of pongs, a batch of 1,024 more, reads of 256 KiB, TLS and
    # socket buffers (those of the hostile peer's reads among them).
    assert peak() < 2**15 + 1024 * 600 + 3 * MiB, peak()


def bombs(peer: HostilePeer, count: int) -> bytes:
    """``count`` messages of 1 MB of zeros, compressed without context takeover."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(bytes(10**6)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return peer.frame(BINARY, body[:-4], rsv1=True) * count


@pytest.mark.parametrize("role", ROLES)
async def test_many_bombs_in_one_read(
    role: str,
    transport: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """64 messages of 1 KB inflating to 1 MB, in one write: max_queue of them at a time."""
    received = []

    async def read_slowly(websocket: anyws.Connection) -> None:
        async for message in websocket:
            received.append(len(message))
            if len(received) == 64:
                await websocket.close()

    async with hostile_peer(
        role, read_slowly, transport, server_ssl_context, client_ssl_context, deflate=True
    ) as peer:
        data = bombs(peer, 64)
        assert len(data) < 70_000  # one read
        with anyio.fail_after(30), peak_memory() as peak:
            await peer.stream.send(data)
            close = await peer.close_frame()
    assert close == Close(1000, "")
    assert received == [10**6] * 64
    # max_queue messages, the one being inflated, the one the handler holds.
    assert peak() < 18 * 10**6 + MiB, peak()
