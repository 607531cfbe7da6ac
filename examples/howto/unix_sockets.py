"""The code of docs/howto/unix-sockets.md: serving and connecting over a Unix socket."""

from __future__ import annotations

import anyws


async def handler(connection: anyws.ServerConnection) -> None:
    assert connection.request is not None
    async for message in connection:
        assert isinstance(message, str)  # text only
        await connection.send(f"{connection.request.path}: {message}")


async def main(path: str = "/run/chat/ws.sock") -> None:
    # [serve]
    async with anyws.unix_serve(handler, path, mode=0o660) as server:
        await server.serve_forever()
    # [/serve]


async def clients(path: str = "/run/chat/ws.sock") -> list[anyws.Data]:
    replies = []
    # [connect]
    async with anyws.unix_connect(path) as ws:
        await ws.send("hello")
        replies.append(await ws.recv())  # "/: hello"

    async with anyws.unix_connect(path, "ws://chat.example/room/1") as ws:
        await ws.send("hello")
        replies.append(await ws.recv())  # "/room/1: hello"
    # [/connect]
    return replies
