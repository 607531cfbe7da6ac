"""Timeouts on ``recv()``: ``anyio.fail_after`` and ``anyio.move_on_after``.

A timeout loses nothing: a message that arrives after it is returned by the next
``recv()``, and the connection stays usable.

Run it with ``python examples/recv_timeout.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def handler(websocket: anyws.ServerConnection) -> None:
    """Answer "late" only when asked to, so that the client's first wait times out."""
    async for message in websocket:
        if message == "now, please":
            await websocket.send("late")


async def client(uri: str) -> list[str]:
    events = []
    async with anyws.connect(uri) as websocket:
        # fail_after raises TimeoutError when the time is up...
        try:
            with anyio.fail_after(0.1):
                await websocket.recv()
        except TimeoutError:
            events.append("no message within 0.1 s")

        # ... move_on_after just leaves the block; check cancelled_caught.
        with anyio.move_on_after(0.1) as scope:
            await websocket.recv()
        if scope.cancelled_caught:
            events.append("still nothing")

        # The connection is still fine, and the next recv() gets the next message.
        await websocket.send("now, please")
        with anyio.fail_after(10):
            events.append(await websocket.recv(decode=True))
    return events


async def main() -> None:
    async with anyws.serve(handler, "127.0.0.1", 0) as server:
        for event in await client(f"ws://127.0.0.1:{server.port}/"):
            print(event)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
