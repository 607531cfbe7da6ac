"""The examples in the docstring of `anyws.testing.connection_pair`.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws
import anyws.testing


async def echo(connection: anyws.ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def pair() -> None:
    # [pair]
    async with anyws.testing.connection_pair() as (client, server):
        await client.send("hello")
        assert await server.recv() == "hello"
    # [/pair]


async def handler() -> None:
    # [handler]
    async with anyws.testing.connection_pair(handler=echo) as (client, _):
        await client.send("hello")
        assert await client.recv() == "hello"
    # [/handler]
