"""An echo client: it sends one message, prints the reply, and closes the connection.

Run it with ``python client.py`` (asyncio) or ``python client.py --backend trio``,
while the echo server of ``server.py`` runs.
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def main(uri: str) -> None:
    async with anyws.connect(uri) as websocket:
        await websocket.send("Hello, world!")
        with anyio.fail_after(10):  # timeouts are yours to set
            reply = await websocket.recv()
        print("received:", reply)
    # Leaving the block closed the connection (code 1000) and stopped its tasks.


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("uri", nargs="?", default="ws://127.0.0.1:8765/")
    args = parser.parse_args()
    anyio.run(main, args.uri, backend=args.backend)
