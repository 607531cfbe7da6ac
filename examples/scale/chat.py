"""A chat relay that runs in as many processes as you like, joined by Redis.

A client connects to ``ws://HOST:PORT/ROOM``; every text message it sends goes to
every client of ROOM, whichever process serves them: the handler publishes it to
Redis, and each process fans what Redis delivers out to its own clients.

    python examples/scale/chat.py --redis redis://localhost:6379 --port 8765
    python examples/scale/chat.py --redis redis://localhost:6379 --port 8766 --backend trio

It needs ``pip install 'anyws[redis]'`` and a Redis server. SIGTERM or Ctrl-C closes
the connections with 1001 (going away) and stops.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Awaitable, Callable

import anyio

import anyws


def make_handler(
    hub: anyws.RedisHub,
) -> Callable[[anyws.ServerConnection], Awaitable[None]]:
    async def handler(websocket: anyws.ServerConnection) -> None:
        assert websocket.request is not None
        room = websocket.request.path  # "/lobby"
        # Subscribed until the handler returns, however the connection ends.
        async with hub.subscribe(websocket, room):
            async for message in websocket:
                if isinstance(message, str):
                    await hub.publish(room, message)

    return handler


async def main(port: int, redis_url: str) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            anyws.RedisHub(redis_url) as hub,
            anyws.serve(make_handler(hub), "127.0.0.1", port) as server,
        ):
            print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
            async for _ in signals:
                break  # leaving serve() closes the connections with 1001


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--redis", default="redis://localhost:6379", help="the Redis URL")
    args = parser.parse_args()
    anyio.run(main, args.port, args.redis, backend=args.backend)
