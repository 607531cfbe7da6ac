"""The example in the docstring of `anyws.route`.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws


# [route]
async def chat(connection: anyws.ServerConnection) -> None:
    await connection.send("welcome to the chat")


async def room(connection: anyws.ServerConnection, room: str) -> None:
    await connection.send(f"welcome to {room}")


async def main(port: int = 8765) -> None:
    async with anyws.route(
        {"/chat": chat, "/rooms/{room}": room},
        "localhost",
        port,
    ) as server:
        print(f"listening on ws://localhost:{server.port}/")
        await server.serve_forever()
        # [/route]
