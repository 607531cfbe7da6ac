"""A connection class of your own, with extra constructor arguments.

``create_connection`` is called like the connection class, with the stream, the
protocol and keyword options; ``functools.partial`` over your subclass adds your
arguments. The same works for clients (`anyws.connect`) and servers (`anyws.serve`).

Run it with ``python examples/custom_connection.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import anyio

import anyws


class UserConnection(anyws.ServerConnection):
    """A server connection that knows which room it serves."""

    def __init__(self, *args: Any, room: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.room = room


class TracedConnection(anyws.ClientConnection):
    """A client connection that counts the messages it sends."""

    def __init__(self, *args: Any, label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label = label
        self.sent = 0

    async def send(self, *args: Any, **kwargs: Any) -> None:
        self.sent += 1
        await super().send(*args, **kwargs)


async def handler(websocket: anyws.ServerConnection) -> None:
    assert isinstance(websocket, UserConnection)
    async for message in websocket:
        if isinstance(message, str):  # text only
            await websocket.send(f"[{websocket.room}] {message}")


def serve(port: int = 0) -> anyws.serve:
    factory = functools.partial(UserConnection, room="lobby")
    return anyws.serve(handler, "127.0.0.1", port, create_connection=factory)


async def client(uri: str) -> str:
    factory = functools.partial(TracedConnection, label="example")
    async with anyws.connect(uri, create_connection=factory) as websocket:
        assert isinstance(websocket, TracedConnection)
        await websocket.send("hello")
        with anyio.fail_after(10):
            reply = await websocket.recv(decode=True)
        return f"{websocket.label}: {reply} (sent {websocket.sent})"


async def main() -> None:
    async with serve() as server:
        print(await client(f"ws://127.0.0.1:{server.port}/"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
