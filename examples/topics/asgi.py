"""The code of docs/topics/asgi.md: anyws beside an ASGI app (FastAPI, Starlette)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyws


# [client]
async def ask_upstream(uri: str, question: str) -> str:
    """Call from an endpoint: a WebSocket client to another service."""
    async with anyws.connect(uri) as websocket:
        await websocket.send(question)
        return str(await websocket.recv())
        # [/client]


# [lifespan]
async def handler(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


@contextlib.asynccontextmanager
async def lifespan(app: object, port: int = 8765) -> AsyncIterator[None]:
    """Starlette(lifespan=lifespan) or FastAPI(lifespan=lifespan): anyws on its own port."""
    async with anyws.serve(handler, "127.0.0.1", port) as server:
        print(f"WebSocket server on ws://127.0.0.1:{server.port}/", flush=True)
        yield
    # Leaving closes the connections with 1001 and waits for the handlers.
    # [/lifespan]
