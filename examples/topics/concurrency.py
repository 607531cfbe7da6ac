"""The code of docs/topics/concurrency.md: a server as a task of your task group."""

from __future__ import annotations

import anyio

import anyws


async def handler(connection: anyws.ServerConnection) -> None:
    await connection.send("hello")


async def in_my_task_group() -> anyws.Data:
    # [start]
    async with anyio.create_task_group() as tg:
        server = await tg.start(anyws.serve(handler, "127.0.0.1", 0).serve)
        # server.port is bound: connect to it
        async with anyws.connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            message = await websocket.recv()
        tg.cancel_scope.cancel()  # stops the server
    # [/start]
    return message
