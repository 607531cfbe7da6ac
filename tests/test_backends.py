"""The backend matrix of tests/conftest.py runs what it says, and so do its fixtures."""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSListener

from .conftest import AUTOJUMP, BACKENDS, MS


def _running_library() -> str:
    """Tell, without sniffio (asyncio-only runs may not have it), which loop runs us."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()  # not in_trio_run(): trio 0.26 hasn't it
        except RuntimeError:
            pass
        else:
            return "trio"
    return "unknown"


async def test_runs_on_the_requested_backend(
    request: pytest.FixtureRequest, anyio_backend_name: str, anyio_backend_options: dict[str, Any]
) -> None:
    """Each parameter of the matrix runs on its own event loop, with its own options."""
    assert _running_library() == anyio_backend_name
    backend_id = request.node.callspec.id
    assert backend_id in BACKENDS
    if anyio_backend_name == "asyncio":
        loop = asyncio.get_running_loop()
        uses_uvloop = type(loop).__module__.startswith("uvloop")
        assert uses_uvloop == (backend_id == "asyncio+uvloop")
        if not uses_uvloop:
            assert loop.get_debug()
    else:
        import trio.testing

        # Real time unless the test asks for virtual time.
        assert not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    await anyio.sleep(MS)


@pytest.mark.autojump
async def test_autojump_makes_long_sleeps_instant(anyio_backend_name: str, mock_clock: Any) -> None:
    """Under @pytest.mark.autojump, an hour of anyio.sleep costs no wall time."""
    assert anyio_backend_name == "trio"
    assert _running_library() == "trio"
    start_virtual = anyio.current_time()
    start_real = time.perf_counter()
    with anyio.fail_after(7200):
        await anyio.sleep(3600)
    assert anyio.current_time() - start_virtual >= 3600
    assert mock_clock.current_time() == anyio.current_time()
    assert time.perf_counter() - start_real < 10  # generous: a loaded CI machine


@pytest.mark.autojump
async def test_autojump_fires_timeouts(request: pytest.FixtureRequest) -> None:
    """Timeouts fire on virtual time too, and each test gets a fresh clock."""
    assert request.node.callspec.id == AUTOJUMP
    assert anyio.current_time() < 3600  # not the clock the test above moved on
    with anyio.move_on_after(30) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught


async def test_tls_fixtures_handshake_over_loopback(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """The trustme contexts agree: a TLS echo over 127.0.0.1 works on every backend."""

    async def echo_once(stream: ByteStream) -> None:
        async with stream:
            await stream.send(await stream.receive())

    tcp_listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp_listener.extra(SocketAttribute.local_port)
    with anyio.fail_after(10):
        async with (
            TLSListener(tcp_listener, server_ssl_context) as listener,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(listener.serve, echo_once)
            async with await anyio.connect_tcp(
                "127.0.0.1", port, ssl_context=client_ssl_context, tls_hostname="localhost"
            ) as client:
                await client.send(b"ping")
                assert await client.receive() == b"ping"
            tg.cancel_scope.cancel()
