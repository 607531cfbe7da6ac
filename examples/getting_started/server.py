"""An echo server: it sends every message it receives back to its sender.

Run it with ``python server.py`` (asyncio) or ``python server.py --backend trio``;
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def echo(websocket: anyws.ServerConnection) -> None:
    # The loop ends when the client closes the connection normally.
    async for message in websocket:
        await websocket.send(message)


async def main(port: int) -> None:
    async with anyws.serve(echo, "127.0.0.1", port) as server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
