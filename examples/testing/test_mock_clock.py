"""A keepalive test under trio's MockClock: a 20 s ping timeout in no wall time.

Run it from the repository root with ``python -m pytest examples/testing/test_mock_clock.py``.
It needs pytest and trio.
"""

from __future__ import annotations

import time

import anyio
import pytest
import trio.testing

import anyws
import anyws.testing


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def test_keepalive_with_the_default_settings() -> None:
    start = time.monotonic()
    client_stream, server_stream = anyws.testing.memory_stream_pair()
    pair = anyws.testing.connection_pair(streams=(client_stream, server_stream))
    async with pair as (_, server):
        client_stream.swallow = True  # the client's bytes (its pongs) get lost
        with anyio.fail_after(60), pytest.raises(anyws.ConnectionClosedError) as exc_info:
            await server.recv()
        # ping_interval + ping_timeout, 20 s each by default, on trio's clock
        assert anyio.current_time() >= 40
    assert "keepalive ping timeout" in str(exc_info.value)
    assert time.monotonic() - start < 10  # on the wall clock: next to nothing
