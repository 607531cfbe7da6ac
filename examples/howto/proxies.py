"""The code of docs/howto/proxies.md: no proxy, and a proxy of your choice."""

from __future__ import annotations

import anyws


async def direct(port: int = 8765) -> anyws.Data:
    # [direct]
    async with anyws.connect(f"ws://localhost:{port}/", proxy=None) as ws:
        await ws.send("hello")
        reply = await ws.recv()
    # [/direct]
    return reply


async def through(uri: str, proxy: str = "proxy.example:3128") -> anyws.Data:
    # [proxy]
    async with anyws.connect(uri, proxy=f"http://user:secret@{proxy}") as ws:
        await ws.send("hello")
        reply = await ws.recv()
    # [/proxy]
    return reply
