"""An echo server and a client in one program, the example of the docs' landing page.

Run it with ``python examples/hello.py`` (asyncio) or ``--backend trio``.
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def echo(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main() -> None:
    async with (
        anyws.serve(echo, "127.0.0.1", 0) as server,  # port 0: any free port
        anyws.connect(f"ws://127.0.0.1:{server.port}/") as websocket,
    ):
        await websocket.send("Hello, world!")
        with anyio.fail_after(10):
            print(await websocket.recv())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
