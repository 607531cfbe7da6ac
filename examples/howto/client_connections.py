"""The code of docs/howto/client-connections.md: credentials in the URI."""

from __future__ import annotations

import anyws


async def feed(host: str = "example.com") -> anyws.Data:
    # [basic-auth]
    async with anyws.connect(f"wss://alice:s%40cret@{host}/feed") as websocket:
        message = await websocket.recv()
    # [/basic-auth]
    return message
