"""`RedisHub`: broadcast across processes through a real redis-server (tests/services.py).

In-process tests run on asyncio, uvloop and trio; `test_two_processes` runs two
server processes of examples/scale/chat.py on asyncio and on trio, with clients on
both.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack

import anyio
import pytest

from anyws import ConnectionClosedOK, RedisHub, ServerConnection, connect, serve
from tests.conftest import BACKENDS, MS
from tests.services import free_port, redis_server, start_redis, stop
from tests.test_docs_examples import start_server


coredis = pytest.importorskip("coredis")

pytestmark = pytest.mark.filterwarnings(
    # coredis (6.9) leaves the memory streams of its connections unclosed when a
    # connection attempt fails or a connection is lost: not anyws' to close.
    r"ignore:Exception ignored in. <function MemoryObject(Send|Receive)Stream.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)

TIMEOUT = 10_000 * MS


@pytest.fixture(autouse=True)
def _collect_coredis_garbage() -> Iterator[None]:
    """Collect coredis' leftovers while the filter above applies, not at the end of the run."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


async def numsub(url: str, channel: str) -> int:
    """How many Redis subscribers (processes) ``channel`` has, asked of Redis itself."""
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        return int((await client.pubsub_numsub(channel))[channel])


class App:
    """A server whose handler subscribes its connection to the channel named by the path."""

    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub
        self.left = 0
        self.left_event = anyio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        try:
            async with self.hub.subscribe(ws, ws.request.path.strip("/")):
                await ws.send("subscribed")
                async for _ in ws:
                    pass
        finally:
            self.left += 1
            self.left_event.set()


async def test_publish_reaches_every_subscriber(redis_url: str) -> None:
    """One message, two subscribers of the channel, none of another channel."""
    with anyio.fail_after(TIMEOUT):
        async with RedisHub(redis_url) as hub:
            app = App(hub)
            async with serve(app.handler, "127.0.0.1", 0) as server:
                uri = f"ws://127.0.0.1:{server.port}"
                async with (
                    connect(f"{uri}/news") as first,
                    connect(f"{uri}/news") as second,
                    connect(f"{uri}/sports") as other,
                ):
                    for ws in (first, second, other):
                        assert await ws.recv() == "subscribed"
                    assert hub.subscribers("news") == 2
                    assert await hub.publish("news", "extra!") == 1  # one process
                    assert await hub.publish("news", "caf\u00e9".encode()) == 1
                    await hub.publish("sports", "goal")
                    for ws in (first, second):
                        assert await ws.recv() == "extra!"
                        assert await ws.recv() == "caf\u00e9"
                    assert await other.recv() == "goal"


async def test_binary_hub(redis_url: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            RedisHub(redis_url, text=False) as hub,
            serve(App(hub).handler, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.port}/bin") as ws,
        ):
            assert await ws.recv() == "subscribed"
            await hub.publish("bin", b"\x00\xff")
            await hub.publish("bin", "text goes out as bytes")
            assert await ws.recv() == b"\x00\xff"
            assert await ws.recv() == b"text goes out as bytes"


async def test_text_hub_drops_invalid_utf8(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="anyws.redis")
    with anyio.fail_after(TIMEOUT):
        async with (
            RedisHub(redis_url) as hub,
            serve(App(hub).handler, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.port}/t") as ws,
        ):
            assert await ws.recv() == "subscribed"
            await hub.publish("t", b"\xff")
            await hub.publish("t", "after")
            assert await ws.recv() == "after"
    assert [r.getMessage() for r in caplog.records if r.name == "anyws.redis"] == [
        "dropped a message of channel t: not UTF-8 text"
    ]


async def test_unsubscribed_on_disconnect(redis_url: str) -> None:
    """When the handler ends, nothing is left: no local subscriber, no Redis subscription."""
    with anyio.fail_after(TIMEOUT):
        async with RedisHub(redis_url) as hub:
            app = App(hub)
            async with serve(app.handler, "127.0.0.1", 0) as server:
                uri = f"ws://127.0.0.1:{server.port}/gone"
                async with connect(uri) as ws1, connect(uri) as ws2:
                    for ws in (ws1, ws2):
                        assert await ws.recv() == "subscribed"
                    assert await numsub(redis_url, "gone") == 1
                    await ws1.close()
                    while app.left < 1:
                        await app.left_event.wait()
                        app.left_event = anyio.Event()
                    # One connection left: the process stays subscribed.
                    assert hub.subscribers("gone") == 1
                    assert await numsub(redis_url, "gone") == 1
                while app.left < 2:
                    await app.left_event.wait()
                    app.left_event = anyio.Event()
                assert hub.subscribers("gone") == 0
                assert await numsub(redis_url, "gone") == 0
                assert hub._subscribers == {}


async def test_nested_subscriptions_to_one_channel(redis_url: str) -> None:
    """Each subscription counts: leaving the inner one keeps the outer one."""
    with anyio.fail_after(TIMEOUT):
        async with RedisHub(redis_url) as hub:
            got: list[str] = []

            async def handler(ws: ServerConnection) -> None:
                async with hub.subscribe(ws, "n"):
                    async with hub.subscribe(ws, "n", "m"):
                        await ws.send("in")
                        got.append(str(await ws.recv()))
                    await ws.send(f"out {hub.subscribers('n')} {hub.subscribers('m')}")
                    got.append(str(await ws.recv()))

            async with (
                serve(handler, "127.0.0.1", 0) as server,
                connect(f"ws://127.0.0.1:{server.port}/") as ws,
            ):
                assert await ws.recv() == "in"
                await ws.send("leave inner")
                assert await ws.recv() == "out 1 0"
                assert await numsub(redis_url, "m") == 0
                await hub.publish("n", "still here")
                assert await ws.recv() == "still here"
                await ws.send("done")
    assert got == ["leave inner", "done"]


class Reconnected(logging.Handler):
    """Sets an event when the hub logs that it is connected again (and subscribed)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("reconnected to Redis"):
            self.event.set()


async def test_reconnects_after_redis_restarts(caplog: pytest.LogCaptureFixture) -> None:
    """Redis goes away: the hub logs it, reconnects with backoff, subscribes again."""
    caplog.set_level(logging.INFO, logger="anyws.redis")
    reconnected = Reconnected()
    logging.getLogger("anyws.redis").addHandler(reconnected)
    port = free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}"
    try:
        with anyio.fail_after(TIMEOUT):
            async with (
                RedisHub(url, reconnect_delay=0.1, max_reconnect_delay=0.2) as hub,
                serve(App(hub).handler, "127.0.0.1", 0) as server,
                connect(f"ws://127.0.0.1:{server.port}/r") as ws,
            ):
                assert await ws.recv() == "subscribed"
                stop(process)
                with pytest.raises(OSError) as exc_info:
                    await hub.publish("r", "lost")
                assert str(exc_info.value).startswith(f"can't publish to Redis at {url}: ")
                process = start_redis(port)
                await reconnected.event.wait()
                assert await hub.publish("r", "back") == 1
                assert await ws.recv() == "back"
    finally:
        logging.getLogger("anyws.redis").removeHandler(reconnected)
        stop(process)
    messages = [r.getMessage() for r in caplog.records if r.name == "anyws.redis"]
    assert messages[0].startswith(f"lost connection to Redis at {url} (")
    assert messages[0].endswith("; reconnecting in 0.1 s")
    assert messages[-1] == f"reconnected to Redis at {url}"


async def test_redis_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as exc_info:
        async with RedisHub(url):
            pass  # pragma: no cover
    assert str(exc_info.value).startswith(f"can't connect to Redis at {url}: ")
    assert exc_info.value.__cause__ is not None


async def test_not_running(redis_url: str) -> None:
    hub = RedisHub(redis_url)
    with pytest.raises(RuntimeError) as exc_info:
        await hub.publish("c", "m")
    assert str(exc_info.value) == "RedisHub isn't running: use async with RedisHub(...)"
    with pytest.raises(RuntimeError) as exc_info:
        async with hub.subscribe(object(), "c"):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert str(exc_info.value) == "RedisHub isn't running: use async with RedisHub(...)"
    async with hub:
        with pytest.raises(TypeError) as type_error:
            await hub.publish("c", 42)  # type: ignore[arg-type]
        assert str(type_error.value) == "data must be str or bytes"
        with pytest.raises(RuntimeError) as exc_info:
            async with hub:
                pass  # pragma: no cover
        assert str(exc_info.value) == "RedisHub is running already"


def test_without_coredis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "coredis", None)
    with pytest.raises(ImportError) as exc_info:
        RedisHub()
    assert str(exc_info.value) == "RedisHub requires coredis: pip install 'anyws[redis]'"


# Two processes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(name, id=name) for name in ("asyncio", "trio") if name in BACKENDS],
    indirect=True,
)
async def test_two_processes(redis_url: str, anyio_backend_name: str) -> None:
    """examples/scale/chat.py in two processes: a message reaches the clients of both.

    The servers run on the backend of the test; not on uvloop too: processes take time.
    """
    backend = anyio_backend_name
    args = ("--redis", redis_url)
    with (
        start_server("scale/chat.py", *args, backend=backend) as (first, uri1),
        start_server("scale/chat.py", *args, backend=backend) as (second, uri2),
    ):
        with anyio.fail_after(TIMEOUT):
            async with AsyncExitStack() as stack:
                # A handler reads only once subscribed: one's own message coming back
                # says that the connection is subscribed.
                alice = await stack.enter_async_context(connect(f"{uri1}lobby"))
                await alice.send("alice here")
                assert await alice.recv() == "alice here"
                bob = await stack.enter_async_context(connect(f"{uri2}lobby"))
                await bob.send("bob here")
                assert await bob.recv() == "bob here"
                assert await alice.recv() == "bob here"
                carol = await stack.enter_async_context(connect(f"{uri2}other"))
                await carol.send("carol here")
                assert await carol.recv() == "carol here"
                await alice.send("hi from 1")
                assert await alice.recv() == "hi from 1"
                assert await bob.recv() == "hi from 1"
                await bob.send("hi from 2")
                assert await alice.recv() == "hi from 2"
                assert await bob.recv() == "hi from 2"
                assert await numsub(redis_url, "/lobby") == 2
                async with RedisHub(redis_url) as hub:  # a third process could do the same
                    assert await hub.publish("/lobby", "announcement") == 2
                assert await alice.recv() == "announcement"
                assert await bob.recv() == "announcement"
                # SIGTERM: the process closes its connections with 1001 and exits.
                first.popen.terminate()
                with pytest.raises(ConnectionClosedOK) as closed:
                    await alice.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1001
                assert first.wait() == 0
                await bob.send("still there")
                assert await bob.recv() == "still there"
        assert second.popen.poll() is None
