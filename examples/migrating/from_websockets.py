"""The same client, with websockets (asyncio only) and with anyws (asyncio or trio).

Run it with ``python examples/migrating/from_websockets.py ws://127.0.0.1:8765/``
while an echo server runs (``python -m anyws serve``); add ``--backend trio`` to run
the anyws version on trio (the websockets version then doesn't run).
"""

from __future__ import annotations

import argparse
import asyncio

import anyio

import anyws


async def websockets_client(uri: str) -> str:
    """Before: websockets' asyncio API."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(uri) as websocket:
        await websocket.send("hello")
        try:
            return str(await asyncio.wait_for(websocket.recv(), 10))
        except ConnectionClosed:
            return "connection closed"


async def anyws_client(uri: str) -> str:
    """After: anyws, on asyncio or trio."""
    async with anyws.connect(uri) as websocket:
        await websocket.send("hello")
        try:
            with anyio.fail_after(10):
                return str(await websocket.recv())
        except anyws.ConnectionClosed:
            return "connection closed"


async def main(uri: str, backend: str) -> None:
    if backend == "asyncio":
        print(f"websockets: {await websockets_client(uri)}")
    print(f"anyws: {await anyws_client(uri)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("uri", nargs="?", default="ws://127.0.0.1:8765/")
    args = parser.parse_args()
    anyio.run(main, args.uri, args.backend, backend=args.backend)
