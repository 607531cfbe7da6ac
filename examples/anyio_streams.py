"""A connection is an anyio object stream: code written for anyio's streams takes it.

``relay`` knows nothing of WebSockets: it copies items from any
``ObjectReceiveStream`` to any ``ObjectSendStream`` until the end of the stream, then
closes the sink. The server relays a memory object stream of updates into each
connection (closing it at the end), and reads the request path from the connection's
typed attributes; the client relays its connection into a memory object stream, which
ends with the connection: ``receive()`` raises ``anyio.EndOfStream`` on a normal close.

Run it with ``python examples/anyio_streams.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse
from typing import TypeVar

import anyio
import anyio.abc

import anyws


T = TypeVar("T")


async def relay(
    source: anyio.abc.ObjectReceiveStream[T], sink: anyio.abc.ObjectSendStream[T]
) -> None:
    """Copy until the source ends, then close the sink (anyio streams only)."""
    async with sink:
        while True:
            try:
                item = await source.receive()
            except anyio.EndOfStream:
                return
            await sink.send(item)


async def handler(websocket: anyws.ServerConnection) -> None:
    path = websocket.extra(anyws.WebSocketAttribute.path)
    send, receive = anyio.create_memory_object_stream[str](3)
    async with send:
        for n in range(3):
            send.send_nowait(f"{path}: update {n}")
    async with receive:
        await relay(receive, websocket)  # sends the updates, then closes (1000)


async def client(uri: str) -> list[anyws.Data]:
    async with anyws.connect(uri) as websocket:
        send, receive = anyio.create_memory_object_stream[anyws.Data]()
        websocket.start_soon(relay, websocket, send)
        async with receive:
            return [message async for message in receive]  # until the relay closes `send`


async def main() -> None:
    async with anyws.serve(handler, "127.0.0.1", 0) as server:
        print(await client(f"ws://127.0.0.1:{server.port}/jobs"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
