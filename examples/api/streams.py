"""The examples in the docstrings of `anyws.testing`'s in-memory streams.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyio
import pytest

from anyws.testing import lockstep_stream_pair, memory_stream_pair


async def memory() -> None:
    # [memory_stream_pair]
    client, server = memory_stream_pair()
    await client.send(b"ping")
    assert await server.receive() == b"ping"
    await server.aclose()
    with pytest.raises(anyio.EndOfStream):
        await client.receive()
    # [/memory_stream_pair]


async def lockstep() -> None:
    # [lockstep_stream_pair]
    left, right = lockstep_stream_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(left.send, b"abc")  # waits for the receive below
        await anyio.wait_all_tasks_blocked()
        assert await right.receive() == b"abc"
    # [/lockstep_stream_pair]


async def swallow() -> None:
    # [swallow]
    client, server = memory_stream_pair()
    server.swallow = True
    await server.send(b"pong")  # lost
    server.swallow = False
    await server.send(b"late")
    assert await client.receive() == b"late"
    # [/swallow]


async def paused() -> None:
    # [paused]
    client, server = memory_stream_pair()
    client.paused = True  # the server stops reading
    await client.send(b"hello")
    with anyio.move_on_after(0.1) as scope:
        await server.receive()
    assert scope.cancelled_caught  # the receive() waited
    client.paused = False
    assert await server.receive() == b"hello"
    # [/paused]


async def trickle() -> None:
    # [trickle]
    client, server = memory_stream_pair()
    client.trickle = 1
    await client.send(b"GET")
    assert await server.receive() == b"G"
    assert await server.receive() == b"E"
    # [/trickle]


async def delay_eof() -> None:
    # [delay_eof]
    client, server = memory_stream_pair()
    client.delay_eof = True
    await client.send(b"bye")
    await client.send_eof()
    assert await server.receive() == b"bye"
    with anyio.move_on_after(0.1) as scope:
        await server.receive()
    assert scope.cancelled_caught  # the receive() waited for the EOF
    client.delay_eof = False
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    # [/delay_eof]


async def reset() -> None:
    # [reset]
    client, server = memory_stream_pair()
    server.reset()
    with pytest.raises(anyio.BrokenResourceError) as exc_info:
        await client.receive()
    assert isinstance(exc_info.value.__cause__, ConnectionResetError)
    # [/reset]
