"""What a lost TCP connection looks like, and how to handle it.

The server sends one message, then closes the TCP connection under the WebSocket,
without a close frame: what a proxy that drops idle connections, a mobile network
or a sleeping laptop does. The client prints the message, then the error it gets.

Run it with ``python examples/faq/lost_tcp.py`` (add ``--backend trio``,
``--reset`` for a TCP reset instead of a clean TCP close).
"""

from __future__ import annotations

import argparse
import socket
import struct

import anyio
import anyio.abc

import anyws


async def drop_tcp(websocket: anyws.ServerConnection, *, reset: bool = False) -> None:
    """Close the TCP connection without a closing handshake (a FIN, or a RST)."""
    sock = websocket.transport.extra(anyio.abc.SocketAttribute.raw_socket)
    if reset:
        # SO_LINGER with a zero timeout: close() sends a RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await anyio.aclose_forcefully(websocket.transport)


async def handler(websocket: anyws.ServerConnection, *, reset: bool = False) -> None:
    await websocket.send("hello")
    # send() only queues the frame; a pong proves the client read everything before it.
    await (await websocket.ping())
    await drop_tcp(websocket, reset=reset)


async def client(uri: str) -> anyws.ConnectionClosed:
    """Print messages until the connection ends; return the exception that ended it."""
    async with anyws.connect(uri) as websocket:
        try:
            async for message in websocket:
                print(f"received: {message!r}")
        except anyws.ConnectionClosedError as exc:
            # The connection was lost (or closed with an error code): log it, then
            # reconnect if your application should.
            print(f"connection lost: {exc} (cause: {exc.__cause__!r})")
            return exc
    raise AssertionError("the connection closed normally")  # not in this example


async def main(reset: bool) -> None:
    async def serve_one(websocket: anyws.ServerConnection) -> None:
        await handler(websocket, reset=reset)

    async with anyws.serve(serve_one, "127.0.0.1", 0) as server:
        await client(f"ws://127.0.0.1:{server.port}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--reset", action="store_true", help="send a TCP RST")
    args = parser.parse_args()
    anyio.run(main, args.reset, backend=args.backend)
