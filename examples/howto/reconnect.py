"""The code of docs/howto/reconnect.md: leaving the loop, and when to retry."""

from __future__ import annotations

import contextlib

import anyws


async def first_message(uri: str) -> anyws.Data:
    """Take one message from the first connection that opens, then leave the loop."""
    # [aclosing]
    async with contextlib.aclosing(anyws.reconnect(uri)) as attempts:
        async for attempt in attempts:
            async with attempt as websocket:
                message = await websocket.recv()
            break  # leaving the block closes the iterator
    # [/aclosing]
    return message


# [process-exception]
def process_exception(exc: Exception) -> Exception | None:
    if isinstance(exc, anyws.InvalidStatus) and exc.response.status_code == 429:
        return None  # rate-limited: try again later
    return anyws.reconnect.process_exception(exc)


async def patient(uri: str, **backoff: float) -> anyws.Data:
    """The first message from a server that may answer 429 at first."""
    reconnect = anyws.reconnect(uri, process_exception=process_exception, **backoff)
    async for attempt in reconnect:
        async with attempt as websocket:
            return await websocket.recv()
    raise AssertionError("reconnect() never stops by itself")
