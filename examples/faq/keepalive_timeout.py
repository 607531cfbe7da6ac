"""What a keepalive timeout looks like: a receiver that can't keep up.

The server's handler gets stuck (a slow database call, a blocked thread...) while
the client sends more than ``max_queue`` messages. Once ``max_queue`` messages wait
unread, the server stops reading, so it doesn't read the client's pongs either:
after ``ping_interval + ping_timeout`` its keepalive fails the connection with 1011.
A peer that stops answering (a frozen process, a dead network) looks the same.

Run it with ``python examples/faq/keepalive_timeout.py`` (add ``--backend trio``).
It takes about 3 seconds: the server pings every second and waits 1 s for the pong.
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def handler(websocket: anyws.ServerConnection, *, busy: float = 3.0) -> str:
    """Get stuck for ``busy`` seconds, then read; return what ended the connection."""
    await anyio.sleep(busy)  # stuck: the messages pile up
    count = 0
    try:
        async for _ in websocket:
            count += 1
    except anyws.ConnectionClosedError as exc:
        print(f"server: read {count} messages, then: {exc}")
        return str(exc)
    return "closed normally"


async def client(uri: str, messages: int = 20) -> str:
    """Send ``messages`` messages at once; return what ended the connection."""
    async with anyws.connect(uri) as websocket:
        for i in range(messages):
            await websocket.send(f"message {i}")
        try:
            await websocket.recv()
        except anyws.ConnectionClosedError as exc:
            print(f"client: {exc}")
            return str(exc)
    return "closed normally"


async def main(busy: float = 3.0, ping: float = 1.0) -> None:
    async def stuck(websocket: anyws.ServerConnection) -> None:
        await handler(websocket, busy=busy)

    async with anyws.serve(stuck, "127.0.0.1", 0, ping_interval=ping, ping_timeout=ping) as server:
        await client(f"ws://127.0.0.1:{server.port}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
