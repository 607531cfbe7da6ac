"""A connection is an anyio `ObjectStream` of messages, with typed attributes.

Every test runs on each backend, over 127.0.0.1 TCP (anyws' asyncio transport on
asyncio, anyio's socket streams on trio), TLS (trustme) and in-memory streams
(`anyws.testing.connection_pair`), bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.abc
import pytest
from anyio.streams.stapled import StapledObjectStream
from anyio.streams.tls import TLSAttribute

import anyws
from anyws import (
    ClientConnection,
    ConnectionClosedError,
    ConnectionClosedOK,
    ServerConnection,
    WebSocketAttribute,
)
from anyws.sansio.extensions import PerMessageDeflate
from anyws.testing import connection_pair
from tests.conftest import MS


TIMEOUT = 10_000 * MS

T = TypeVar("T")

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture(params=["tcp", "tls", "memory"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def client_for(
    transport: str,
    handler: Handler,
    request: pytest.FixtureRequest,
    path: str = "/",
    **options: object,
) -> AsyncIterator[ClientConnection]:
    """A client connected to a server that runs ``handler``."""
    if transport == "memory":
        async with connection_pair(
            handler=handler,
            uri=f"ws://localhost{path}",
            client_options=options,
            server_options=options,
        ) as (client, _):
            yield client
        return
    server_options: dict[str, object] = dict(options)
    client_options: dict[str, object] = dict(options)
    scheme = "ws"
    if transport == "tls":
        server_ssl: ssl.SSLContext = request.getfixturevalue("server_ssl_context")
        client_ssl: ssl.SSLContext = request.getfixturevalue("client_ssl_context")
        server_options["ssl"] = server_ssl
        client_options["ssl"] = client_ssl
        scheme = "wss"
    async with (
        anyws.serve(handler, "127.0.0.1", 0, **server_options) as server,  # type: ignore[arg-type]
        anyws.connect(f"{scheme}://127.0.0.1:{server.port}{path}", **client_options) as client,  # type: ignore[arg-type]
    ):
        yield client


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def relay(
    source: anyio.abc.ObjectReceiveStream[T], sink: anyio.abc.ObjectSendStream[T]
) -> None:
    """Code written against anyio's streams only: copy until the end, then close."""
    async with sink:
        while True:
            try:
                item = await source.receive()
            except anyio.EndOfStream:
                return
            await sink.send(item)


async def test_is_an_object_stream(transport: str, request: pytest.FixtureRequest) -> None:
    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, echo, request) as client:
            assert isinstance(client, anyio.abc.ObjectStream)
            await client.send("text")
            assert await client.receive() == "text"
            await client.send(b"bytes")
            assert await client.receive() == b"bytes"


async def test_receive_ends_with_end_of_stream_on_a_normal_close(
    transport: str, request: pytest.FixtureRequest
) -> None:
    async def send_two_and_close(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send("two")

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, send_two_and_close, request) as client:
            assert await client.receive() == "one"
            assert await client.receive() == "two"
            with pytest.raises(anyio.EndOfStream) as excinfo:
                await client.receive()
            assert isinstance(excinfo.value.__cause__, ConnectionClosedOK)
            with pytest.raises(anyio.EndOfStream):
                await client.receive()  # and again


async def test_receive_raises_broken_resource_on_an_abnormal_close(
    transport: str, request: pytest.FixtureRequest
) -> None:
    async def fail(ws: ServerConnection) -> None:
        raise RuntimeError("handler bug")

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, fail, request) as client:
            with pytest.raises(anyio.BrokenResourceError) as excinfo:
                await client.receive()
            cause = excinfo.value.__cause__
            assert isinstance(cause, ConnectionClosedError)
            assert cause.rcvd is not None
            assert cause.rcvd.code == 1011


async def test_send_eof_starts_the_closing_handshake(
    transport: str, request: pytest.FixtureRequest
) -> None:
    """Messages that the peer sent before our close frame reached it still arrive."""
    sent = anyio.Event()

    async def send_two(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send("two")
        sent.set()
        async for _ in ws:  # ends with the client's close frame
            pass
        assert ws.close_code == 1000

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, send_two, request) as client:
            await sent.wait()
            await client.send_eof()
            assert client.state is anyws.State.CLOSING
            with pytest.raises(anyws.ConnectionClosed):
                await client.send("too late")
            assert await client.receive() == "one"
            assert await client.receive() == "two"
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            assert (client.close_code, client.close_reason) == (1000, "")
            await client.send_eof()  # does nothing now


async def test_stapled_and_memory_relay(transport: str, request: pytest.FixtureRequest) -> None:
    """A connection in StapledObjectStream, fed through memory object streams."""
    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, echo, request) as client:
            incoming_send, incoming_receive = anyio.create_memory_object_stream[str | bytes](4)
            # Sends go to the WebSocket; receives come from the memory stream, into
            # which a relay copies what the WebSocket receives.
            stapled = StapledObjectStream(client, incoming_receive)
            async with stapled, anyio.create_task_group() as tg:
                tg.start_soon(relay, client, incoming_send)
                await stapled.send("ping")
                assert await stapled.receive() == "ping"
                await stapled.send(b"\x00")
                assert await stapled.receive() == b"\x00"
                await stapled.send_eof()  # the closing handshake
                with pytest.raises(anyio.EndOfStream):
                    await stapled.receive()  # the relay saw the end and closed
            assert client.close_code == 1000


async def test_relay_from_a_memory_stream_into_a_connection(
    transport: str, request: pytest.FixtureRequest
) -> None:
    server_got: list[str | bytes] = []

    async def record(ws: ServerConnection) -> None:
        server_got.extend([message async for message in ws])

    with anyio.fail_after(TIMEOUT):
        async with client_for(transport, record, request) as client:
            send, receive = anyio.create_memory_object_stream[str](4)
            async with receive, anyio.create_task_group() as tg:
                tg.start_soon(relay, receive, client)  # closes the client at the end
                async with send:
                    await send.send("a")
                    await send.send("b")
            await client.wait_closed()
            assert client.close_code == 1000
    assert server_got == ["a", "b"]


async def test_typed_attributes(transport: str, request: pytest.FixtureRequest) -> None:
    server_side: list[anyws.ServerConnection] = []

    async def keep(ws: ServerConnection) -> None:
        server_side.append(ws)
        await ws.wait_closed()

    with anyio.fail_after(TIMEOUT):
        async with client_for(
            transport,
            keep,
            request,
            path="/rooms/1?x=y",
            subprotocols=["chat"],
        ) as client:
            while not server_side:
                await anyio.lowlevel.checkpoint()
            [server] = server_side
            for ws in (client, server):
                assert ws.extra(WebSocketAttribute.subprotocol) == "chat"
                assert ws.extra(WebSocketAttribute.path) == "/rooms/1?x=y"
                [extension] = ws.extra(WebSocketAttribute.extensions)
                assert isinstance(extension, PerMessageDeflate)
                assert (
                    ws.extra(WebSocketAttribute.request_headers)["Sec-WebSocket-Protocol"] == "chat"
                )
                assert (
                    ws.extra(WebSocketAttribute.response_headers)["Sec-WebSocket-Protocol"]
                    == "chat"
                )
            if transport == "memory":
                assert client.extra(anyio.abc.SocketAttribute.remote_address, None) is None
            else:
                # The transport's attributes come through.
                address = client.extra(anyio.abc.SocketAttribute.remote_address)
                assert address == server.extra(anyio.abc.SocketAttribute.local_address)
                assert address == client.remote_address
            if transport == "tls":
                assert client.extra(TLSAttribute.server_side) is False
                assert server.extra(TLSAttribute.server_side) is True
                assert client.extra(TLSAttribute.tls_version).startswith("TLS")
            else:
                with pytest.raises(anyio.TypedAttributeLookupError):
                    client.extra(TLSAttribute.server_side)


async def test_no_websocket_attributes_before_the_handshake() -> None:
    attributes: list[object] = []

    def process_request(ws: ServerConnection, request: anyws.Request) -> None:
        attributes.append(ws.extra(WebSocketAttribute.path, "not yet"))
        attributes.append(ws.extra(WebSocketAttribute.subprotocol, "not yet"))

    with anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(echo, "127.0.0.1", 0, process_request=process_request) as server,
            anyws.connect(f"ws://127.0.0.1:{server.port}/"),
        ):
            pass
    assert attributes == ["not yet", "not yet"]
