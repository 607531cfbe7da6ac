"""KeyboardInterrupt and SystemExit reach the user as they are, on every backend.

The connection's background tasks catch every `Exception` (a bug there is logged, and
never raises into the task group), but not these two: a Ctrl-C that lands in the
reader must stop the program. Nor may it come out wrapped in an exception group.

Each test runs its own event loop with `anyio.run` (from a plain test function): on
asyncio, a KeyboardInterrupt raised in a task leaves the event loop at once.
"""

from __future__ import annotations

import gc
from typing import Any

import anyio
import anyio.abc
import pytest

from anyws import ServerConnection, connect, serve
from tests.conftest import BACKENDS, MS


TIMEOUT = 10_000 * MS

INTERRUPTS = [KeyboardInterrupt, SystemExit]


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return BACKENDS[request.param]()


class Interrupting(anyio.abc.ByteStream):
    """A byte stream whose ``receive`` raises `interrupt` once set, when data arrives."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.interrupt: BaseException | None = None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.stream.receive(max_bytes)
        if self.interrupt is not None:
            raise self.interrupt
        return data

    async def send(self, item: bytes) -> None:
        await self.stream.send(item)

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


# On asyncio, the interrupt leaves the event loop at once, from the task it was raised
# in: a task just started may never run, and transports may be left open (asyncio and
# uvloop then warn). That's asyncio at exit, which is what these two exceptions are for.
pytestmark = [
    pytest.mark.filterwarnings("ignore:coroutine '.*' was never awaited:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=lambda cls: cls.__name__)
def test_interrupt_in_reader_task_reaches_the_user(
    backend: tuple[str, dict[str, Any]], interrupt: type[BaseException]
) -> None:
    """Raised in the client's reader task, it comes out of anyio.run alone."""
    raised = interrupt("in the reader")
    reached: list[str] = []

    async def main() -> None:
        with anyio.fail_after(TIMEOUT):
            async with serve(echo, "127.0.0.1", 0) as server:
                tcp = await anyio.connect_tcp("127.0.0.1", server.port)
                stream = Interrupting(tcp)
                async with connect(f"ws://127.0.0.1:{server.port}/", stream=stream) as ws:
                    stream.interrupt = raised
                    await ws.send("echo me")  # the echo wakes the reader up
                    await ws.recv()
                    reached.append("recv returned")  # pragma: no cover

    name, options = backend
    with pytest.raises(interrupt) as excinfo:
        anyio.run(main, backend=name, backend_options=options)
    assert excinfo.value is raised
    gc.collect()  # what the interrupted loop left behind, under this module's filters
    assert reached == []


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=lambda cls: cls.__name__)
def test_interrupt_in_handler_reaches_the_user(
    backend: tuple[str, dict[str, Any]], interrupt: type[BaseException]
) -> None:
    """Raised in a server's handler, it leaves serve() alone, not in an exception group."""
    raised = interrupt("in the handler")

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        raise raised

    async def main() -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                serve(handler, "127.0.0.1", 0) as server,
                connect(f"ws://127.0.0.1:{server.port}/") as ws,
            ):
                await ws.send("go")
                await ws.wait_closed()
                await anyio.sleep_forever()  # until serve() is left by the interrupt

    name, options = backend
    with pytest.raises(interrupt) as excinfo:
        anyio.run(main, backend=name, backend_options=options)
    assert excinfo.value is raised
    gc.collect()  # what the interrupted loop left behind, under this module's filters
