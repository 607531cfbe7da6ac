"""The code of docs/howto/broadcast.md: broadcast to every client, and slow clients."""

from __future__ import annotations

import anyws


# [relay]
async def handler(connection: anyws.ServerConnection) -> None:
    server = connection.server
    async for message in connection:
        anyws.broadcast(server.connections, message)
        # [/relay]


async def send_in_a_loop(server: anyws.Server, message: str) -> None:
    # [loop]
    for connection in server.connections:
        await connection.send(message)  # don't
    # [/loop]


def send_update(clients: list[anyws.ServerConnection], update: str) -> None:
    # [bounds]
    anyws.broadcast(clients, update, drain_timeout=5, max_buffer=256 * 1024)
    # [/bounds]
