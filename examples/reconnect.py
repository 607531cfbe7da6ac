"""Stay connected to a WebSocket server: reconnect with backoff, handle each message.

Run: ``python examples/reconnect.py ws://localhost:8765/`` (stop with Ctrl-C).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio

import anyws


async def consume(uri: str, handle: Callable[[anyws.Data], object] = print) -> None:
    async for attempt in anyws.reconnect(uri):
        try:
            async with attempt as websocket:
                async for message in websocket:
                    handle(message)
        except anyws.ConnectionClosed:
            continue  # the connection was lost: connect again


if __name__ == "__main__":
    anyio.run(consume, sys.argv[1])
