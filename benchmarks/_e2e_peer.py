"""The processes of the end-to-end benchmark: an echo server, or a client running one workload.

``benchmarks/e2e.py`` starts them; they are not meant to be run by hand, but can be:

    python -m benchmarks._e2e_peer server anyws-trio
    python -m benchmarks._e2e_peer client anyws-trio latency --port P --server-pid PID

A server binds 127.0.0.1 on a free port, prints ``READY <port>`` and echoes every
message until it is killed. A client runs one workload against it and prints one line of
JSON with its measurements, then leaves at once with `os._exit` (connections are not
closed: the server is killed next anyway, and a library's slow teardown must not count).
A watchdog ends a client that is still running after ``timeout`` seconds with
``{"status": "timeout"}``: a deadlocked library is reported, not waited for.

Every implementation is written with its own API, the way its documentation shows,
with compression off and message size limits raised; the ``compressed-*`` workloads
leave each library's compression at its default (permessage-deflate) instead, and run
only the libraries that have it (`Impl.compression`). The workload code is shared: it is
written on anyio, which runs on each library's event loop (asyncio or trio), and calls
the library only through a connection's ``send`` and ``recv`` (bound methods, so no
wrapper sits on the hot path). The raw echo is the floor: length-prefixed messages over
an anyio TCP stream, parsed and batched with the least Python a message protocol needs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc


HOST = "127.0.0.1"
BACKLOG = 4096  # 500 simultaneous connects must not overflow a listen queue
MAX_SIZE = 2**22  # above the 1 MiB messages, for libraries that need a number
OPEN_TIMEOUT = 60.0  # hundreds of simultaneous handshakes on 2 cores take a while
READ_SIZE = 2**18

Send = Callable[[bytes], Awaitable[Any]]
Recv = Callable[[], Awaitable[Any]]
Connect = Callable[[str], contextlib.AbstractAsyncContextManager[tuple[Send, Recv]]]
Ready = Callable[[int], None]


# Compression ----------------------------------------------------------------------------

#: True in the processes of a ``compressed-*`` workload (set by `run_server` and
#: `run_client` before anything connects): the libraries then keep their default
#: compression, permessage-deflate, and the client checks that it was negotiated.
_compressed = False
#: The permessage-deflate extension the client's first connection negotiated.
_negotiated: Any = None

DEFLATE = "permessage-deflate"


def _set_compression(workload: str | None) -> None:
    global _compressed
    _compressed = workload is not None and workload.startswith("compressed")


@functools.cache
def _anyws_has_compression() -> bool:
    import inspect

    import anyws

    return "compression" in inspect.signature(anyws.serve).parameters


def _anyws_options() -> dict[str, Any]:
    """``compression=None``, where this version of anyws has compression (on by default);
    nothing (the defaults) for the compressed workloads."""
    return {"compression": None} if _anyws_has_compression() and not _compressed else {}


def _websockets_options() -> dict[str, Any]:
    """``compression=None``; nothing (the default, ``"deflate"``) for the compressed workloads."""
    return {} if _compressed else {"compression": None}


def _check_extensions(websocket: Any) -> None:
    """No extension, or permessage-deflate alone in the compressed workloads."""
    global _negotiated
    extensions = list(websocket.protocol.extensions)
    if _compressed:
        if [extension.name for extension in extensions] != [DEFLATE]:
            raise AssertionError(f"{DEFLATE} not negotiated: extensions {extensions}")
        if _negotiated is None:
            _negotiated = extensions[0]
    elif extensions:
        raise AssertionError(f"compression is on: {extensions}")


# Servers --------------------------------------------------------------------------------


async def serve_anyws(ready: Ready) -> None:
    import anyws

    async def echo(websocket: anyws.ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with anyws.serve(
        echo,
        HOST,
        0,
        max_size=None,
        backlog=BACKLOG,
        open_timeout=OPEN_TIMEOUT,
        **_anyws_options(),
    ) as server:
        ready(server.port)
        await server.serve_forever()


async def serve_websockets_asyncio(ready: Ready) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with serve(
        echo,
        HOST,
        0,
        max_size=None,
        open_timeout=OPEN_TIMEOUT,
        backlog=BACKLOG,
        **_websockets_options(),
    ) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await server.serve_forever()


async def serve_websockets_trio(ready: Ready) -> None:
    import trio
    from websockets.trio.server import ServerConnection, serve

    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve(
                echo,
                0,
                host=HOST,
                max_size=None,
                open_timeout=OPEN_TIMEOUT,
                backlog=BACKLOG,
                task_status=task_status,
                **_websockets_options(),
            )
        )
        ready(server.listeners[0].socket.getsockname()[1])
        await trio.sleep_forever()


async def serve_trio_websocket(ready: Ready) -> None:
    import trio
    from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

    async def echo(request: WebSocketRequest) -> None:
        websocket = await request.accept()
        try:
            while True:
                await websocket.send_message(await websocket.get_message())
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                echo,
                HOST,
                0,
                None,
                max_message_size=MAX_SIZE,
                connect_timeout=OPEN_TIMEOUT,
                task_status=task_status,
            )
        )
        ready(server.port)
        await trio.sleep_forever()


async def serve_aiohttp(ready: Ready) -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(max_msg_size=0, compress=False)
        await websocket.prepare(request)
        async for message in websocket:
            if message.type is WSMsgType.BINARY:
                await websocket.send_bytes(message.data)
            elif message.type is WSMsgType.TEXT:
                await websocket.send_str(message.data)
        return websocket

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=BACKLOG)
    await site.start()
    ready(runner.addresses[0][1])
    await anyio.sleep_forever()


async def serve_picows(ready: Ready) -> None:
    """picows: frames echoed from its C listener callback (the record holder on asyncio)."""
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
                # The workloads send whole messages as one frame each.
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    server = await ws_create_server(
        lambda request: Echo(), HOST, 0, max_frame_size=MAX_SIZE, backlog=BACKLOG
    )
    ready(server.sockets[0].getsockname()[1])
    await anyio.sleep_forever()


async def serve_raw(ready: Ready) -> None:
    """Echo length-prefixed messages (4-byte big-endian length, then the payload)."""

    async def echo(stream: anyio.abc.SocketStream) -> None:
        buffer = bytearray()
        receive, send = stream.receive, stream.send
        try:
            while True:
                buffer += await receive(READ_SIZE)
                # Echo every whole message received, in one write.
                end, position = len(buffer), 0
                while end - position >= 4:
                    size = int.from_bytes(buffer[position : position + 4], "big")
                    if end - position - 4 < size:
                        break
                    position += 4 + size
                if position:
                    output = bytes(buffer[:position])
                    del buffer[:position]
                    await send(output)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass

    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0, backlog=BACKLOG)
    async with listener:
        ready(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(echo)


# Clients --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect_anyws(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    import anyws

    async with anyws.connect(
        uri, max_size=None, open_timeout=OPEN_TIMEOUT, **_anyws_options()
    ) as websocket:
        _check_extensions(websocket)
        yield websocket.send, websocket.recv


@contextlib.asynccontextmanager
async def connect_websockets_asyncio(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    from websockets.asyncio.client import connect

    async with connect(
        uri, max_size=None, proxy=None, open_timeout=OPEN_TIMEOUT, **_websockets_options()
    ) as websocket:
        _check_extensions(websocket)
        yield websocket.send, websocket.recv


@contextlib.asynccontextmanager
async def connect_websockets_trio(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    from websockets.trio.client import connect

    async with connect(
        uri, max_size=None, proxy=None, open_timeout=OPEN_TIMEOUT, **_websockets_options()
    ) as websocket:
        _check_extensions(websocket)
        yield websocket.send, websocket.recv


@contextlib.asynccontextmanager
async def connect_trio_websocket(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    from trio_websocket import open_websocket_url

    async with open_websocket_url(
        uri, max_message_size=MAX_SIZE, connect_timeout=OPEN_TIMEOUT
    ) as websocket:
        yield websocket.send_message, websocket.get_message


_aiohttp_session: Any = None


@contextlib.asynccontextmanager
async def connect_aiohttp(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    import aiohttp

    global _aiohttp_session
    if _aiohttp_session is None:
        # One session for the process, as an application has; limit=0: no cap on
        # simultaneous connections (the default, 100, would queue the fan-in's).
        _aiohttp_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    async with _aiohttp_session.ws_connect(
        uri, max_msg_size=0, compress=0, timeout=aiohttp.ClientWSTimeout(ws_close=10)
    ) as websocket:
        yield websocket.send_bytes, websocket.receive_bytes


@contextlib.asynccontextmanager
async def connect_picows(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    import asyncio

    from picows import WSListener, WSMsgType, ws_connect

    queue: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
                queue.put_nowait(frame.get_payload_as_bytes())

    transport, _ = await ws_connect(Client, uri, max_frame_size=MAX_SIZE)

    async def send(data: bytes) -> None:
        transport.send(WSMsgType.BINARY, data)

    try:
        yield send, queue.get
    finally:
        transport.send_close()
        transport.disconnect()
        await transport.wait_disconnected()


class RawChannel:
    """The client side of the raw echo: length-prefixed messages over a TCP stream."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self._stream.send(len(data).to_bytes(4, "big") + data)

    async def recv(self) -> bytes:
        buffer = self._buffer
        while True:
            if len(buffer) >= 4:
                end = 4 + int.from_bytes(buffer[:4], "big")
                if len(buffer) >= end:
                    with memoryview(buffer) as view:
                        message = bytes(view[4:end])
                    del buffer[:end]
                    return message
            buffer += await self._stream.receive(READ_SIZE)


@contextlib.asynccontextmanager
async def connect_raw(uri: str) -> AsyncIterator[tuple[Send, Recv]]:
    port = int(uri.rsplit(":", 1)[1].rstrip("/"))
    async with await anyio.connect_tcp(HOST, port) as stream:
        channel = RawChannel(stream)
        yield channel.send, channel.recv


# Implementations --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str
    backend: str  # "asyncio", "asyncio+uvloop" or "trio"
    serve: Callable[[Ready], Awaitable[None]]
    connect: Connect
    #: Modules that must be importable (checked by e2e.py before it starts anything).
    requires: tuple[str, ...]
    #: Distributions whose versions the report shows.
    distributions: tuple[str, ...]
    default: bool = True
    #: Has permessage-deflate on by default: runs the ``compressed-*`` workloads.
    compression: bool = False

    def run(self, main: Callable[[], Awaitable[object]]) -> None:
        if self.backend == "trio":
            anyio.run(main, backend="trio")
        else:
            uvloop = self.backend == "asyncio+uvloop"
            anyio.run(main, backend="asyncio", backend_options={"use_uvloop": uvloop})


IMPLS = {
    impl.name: impl
    for impl in [
        Impl(
            "anyws-asyncio",
            "asyncio",
            serve_anyws,
            connect_anyws,
            ("anyws",),
            ("anyws",),
            compression=True,
        ),
        Impl(
            "anyws-uvloop",
            "asyncio+uvloop",
            serve_anyws,
            connect_anyws,
            ("anyws", "uvloop"),
            ("anyws", "uvloop"),
            compression=True,
        ),
        Impl(
            "anyws-trio",
            "trio",
            serve_anyws,
            connect_anyws,
            ("anyws", "trio"),
            ("anyws",),
            compression=True,
        ),
        Impl(
            "websockets-asyncio",
            "asyncio",
            serve_websockets_asyncio,
            connect_websockets_asyncio,
            ("websockets.asyncio.server",),
            ("websockets",),
            compression=True,
        ),
        Impl(
            "websockets-uvloop",
            "asyncio+uvloop",
            serve_websockets_asyncio,
            connect_websockets_asyncio,
            ("websockets.asyncio.server", "uvloop"),
            ("websockets",),
            compression=True,
        ),
        Impl(
            "websockets-trio",
            "trio",
            serve_websockets_trio,
            connect_websockets_trio,
            ("websockets.trio.server", "trio"),
            ("websockets",),
            compression=True,
        ),
        Impl(
            "trio-websocket",
            "trio",
            serve_trio_websocket,
            connect_trio_websocket,
            ("trio_websocket",),
            ("trio-websocket", "wsproto"),
        ),
        Impl("aiohttp", "asyncio", serve_aiohttp, connect_aiohttp, ("aiohttp",), ("aiohttp",)),
        Impl("picows", "asyncio", serve_picows, connect_picows, ("picows",), ("picows",)),
        Impl("raw-asyncio", "asyncio", serve_raw, connect_raw, (), ("anyio",)),
        Impl("raw-uvloop", "asyncio+uvloop", serve_raw, connect_raw, ("uvloop",), ("anyio",)),
        Impl("raw-trio", "trio", serve_raw, connect_raw, ("trio",), ("anyio", "trio")),
    ]
}


# Measuring the server process ---------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Meter:
    """CPU time of both processes over the timed part of a workload."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.server = cpu_seconds(server_pid)
        self.client = time.process_time()

    def result(self) -> dict[str, float]:
        return {
            "server_cpu_s": cpu_seconds(self.server_pid) - self.server,
            "client_cpu_s": time.process_time() - self.client,
        }


# Workloads ----------------------------------------------------------------------------------
#
# Each returns its measurements as a dict; the caller prints them and leaves at once.


@dataclasses.dataclass(frozen=True)
class Context:
    impl: Impl
    uri: str
    server_pid: int
    params: dict[str, Any]


def check(message: Any, size: int) -> None:
    if len(message) != size:
        raise AssertionError(f"echo of {len(message)} bytes, {size} sent")


async def workload_throughput(ctx: Context) -> dict[str, Any]:
    """64-byte messages pipelined over one connection: the sender doesn't wait for echoes."""
    count, size = ctx.params["messages"], ctx.params["size"]
    payload = os.urandom(size)
    async with ctx.impl.connect(ctx.uri) as (send, recv):
        for _ in range(100):  # warm-up
            await send(payload)
            await recv()
        last: list[Any] = []

        async def reader() -> None:
            message = None
            for _ in range(count):
                message = await recv()
            last.append(message)

        meter = Meter(ctx.server_pid)
        start = time.perf_counter()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader)
            for _ in range(count):
                await send(payload)
        elapsed = time.perf_counter() - start
        check(last[0], size)
        return {"seconds": elapsed, "messages": count, "value": count / elapsed, **meter.result()}


async def workload_latency(ctx: Context) -> dict[str, Any]:
    """One message at a time: send, wait for the echo, repeat."""
    count, size = ctx.params["messages"], ctx.params["size"]
    payload = os.urandom(size)
    clock = time.perf_counter_ns
    async with ctx.impl.connect(ctx.uri) as (send, recv):
        for _ in range(200):  # warm-up
            await send(payload)
            await recv()
        samples = []
        meter = Meter(ctx.server_pid)
        for _ in range(count):
            start = clock()
            await send(payload)
            message = await recv()
            samples.append(clock() - start)
        check(message, size)
        samples.sort()
        return {
            "messages": count,
            "value": samples[len(samples) // 2] / 1000,  # p50, µs
            "p50_us": samples[len(samples) // 2] / 1000,
            "p99_us": samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000,
            "mean_us": statistics.fmean(samples) / 1000,
            **meter.result(),
        }


async def workload_large(ctx: Context) -> dict[str, Any]:
    """1 MiB messages pipelined, at most ``window`` of them sent and not yet echoed.

    ``window`` 0: no window; the sender never waits for the echoes (which a reader
    task takes as they come), so flow control is the library's alone.
    """
    count, size, window = ctx.params["messages"], ctx.params["size"], ctx.params["window"]
    payload = os.urandom(size)
    async with ctx.impl.connect(ctx.uri) as (send, recv):
        await send(payload)  # warm-up
        check(await recv(), size)
        # A token per message in flight: the sender blocks while ``window`` are.
        in_flight_send, in_flight_receive = anyio.create_memory_object_stream[None](window or count)
        last: list[Any] = []

        async def reader() -> None:
            message = None
            for _ in range(count):
                message = await recv()
                in_flight_receive.receive_nowait()
            last.append(message)

        meter = Meter(ctx.server_pid)
        start = time.perf_counter()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader)
            for _ in range(count):
                await in_flight_send.send(None)  # never waits without a window
                await send(payload)
        elapsed = time.perf_counter() - start
        check(last[0], size)
        return {
            "seconds": elapsed,
            "messages": count,
            "value": count * size / elapsed / 1e6,  # MB/s of echoed payload
            **meter.result(),
        }


async def workload_fanin(ctx: Context) -> dict[str, Any]:
    """Many connections at once, each doing round trips, all released together."""
    connections, trips, size = ctx.params["connections"], ctx.params["trips"], ctx.params["size"]
    payload = os.urandom(size)
    connected = 0
    all_connected, go = anyio.Event(), anyio.Event()
    finished = 0
    all_finished = anyio.Event()
    times: dict[str, float] = {}

    async def client() -> None:
        nonlocal connected, finished
        async with ctx.impl.connect(ctx.uri) as (send, recv):
            connected += 1
            if connected == connections:
                all_connected.set()
            await go.wait()
            for _ in range(trips):
                await send(payload)
                check(await recv(), size)
            finished += 1
            if finished == connections:
                times["exchanged"] = time.perf_counter()
                all_finished.set()

    meter = Meter(ctx.server_pid)
    start = time.perf_counter()
    async with anyio.create_task_group() as task_group:
        for _ in range(connections):
            task_group.start_soon(client)
        await all_connected.wait()
        released = time.perf_counter()
        go.set()
    end = time.perf_counter()
    return {
        "connections": connections,
        "trips": trips,
        "value": end - start,  # connect, round trips, close: all of it
        "connect_s": released - start,
        "exchange_s": times["exchanged"] - released,
        **meter.result(),
    }


async def workload_handshakes(ctx: Context) -> dict[str, Any]:
    """Open and close connections one after the other."""
    count = ctx.params["connections"]
    for _ in range(10):  # warm-up
        async with ctx.impl.connect(ctx.uri):
            pass
    meter = Meter(ctx.server_pid)
    start = time.perf_counter()
    for _ in range(count):
        async with ctx.impl.connect(ctx.uri):
            pass
    elapsed = time.perf_counter() - start
    return {"connections": count, "seconds": elapsed, "value": count / elapsed, **meter.result()}


async def workload_memory(ctx: Context) -> dict[str, Any]:
    """The server's RSS growth for ``connections`` idle connections, per connection."""
    count, size = ctx.params["connections"], ctx.params["size"]
    payload = os.urandom(size)
    # Warm the server up first (imports, caches, the first connection's allocations).
    for _ in range(10):
        async with ctx.impl.connect(ctx.uri) as (send, recv):
            await send(payload)
            await recv()
    await anyio.sleep(0.2)
    before = rss_kib(ctx.server_pid)
    opened = 0
    all_open, release = anyio.Event(), anyio.Event()
    limiter = anyio.CapacityLimiter(50)  # connect in waves: a realistic arrival rate

    async def client() -> None:
        nonlocal opened
        await limiter.acquire()
        async with ctx.impl.connect(ctx.uri) as (send, recv):
            # One echo each: the server's handler is running and waits in recv.
            await send(payload)
            check(await recv(), size)
            limiter.release()
            opened += 1
            if opened == count:
                all_open.set()
            await release.wait()

    async with anyio.create_task_group() as task_group:
        for _ in range(count):
            task_group.start_soon(client)
        await all_open.wait()
        # Let the server settle, then read its RSS twice, and keep the larger.
        await anyio.sleep(0.3)
        after = rss_kib(ctx.server_pid)
        await anyio.sleep(0.1)
        after = max(after, rss_kib(ctx.server_pid))
        # Report while the connections are still open (and leave without closing them).
        _emit(
            {
                "status": "ok",
                "connections": count,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "value": (after - before) / count,  # KiB per connection
            }
        )
    raise AssertionError("unreachable")


def json_messages(count: int, size: int) -> list[str]:
    """``count`` distinct JSON texts of exactly ``size`` bytes (ASCII), the same every run.

    Each is a list of user-like records: the same keys over and over, values that vary
    (ids, names, numbers, timestamps, tags), as an API's responses are. Distinct
    messages keep context takeover from reducing a message to a reference to the last.
    """
    rng = random.Random(20261125)
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "oscar",
        "papa",
        "quebec",
        "romeo",
        "sierra",
        "tango",
        "uniform",
        "victor",
        "whiskey",
        "xray",
    ]
    messages = []
    for _ in range(count):
        records: list[dict[str, Any]] = []
        text = "[]"
        while True:
            user = rng.randrange(10**6)
            record = {
                "id": user,
                "name": f"{rng.choice(words).title()} {rng.choice(words).title()}",
                "email": f"{rng.choice(words)}.{user}@example.com",
                "active": rng.random() < 0.8,
                "score": round(rng.uniform(0, 100), 2),
                "balance": rng.randrange(-5000, 100000) / 100,
                "created_at": (
                    f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T"
                    f"{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}Z"
                ),
                "tags": rng.sample(words, rng.randint(0, 3)),
                "note": "",
            }
            candidate = json.dumps([*records, record], separators=(",", ":"))
            if len(candidate) > size:
                break
            records.append(record)
            text = candidate
        # Pad the last record's note to the exact size.
        records[-1]["note"] = "x" * (size - len(text))
        text = json.dumps(records, separators=(",", ":"))
        assert len(text) == size, len(text)
        assert text.isascii()
        messages.append(text)
    return messages


def random_messages(count: int, size: int) -> list[bytes]:
    """``count`` distinct messages of ``size`` random bytes, the same every run."""
    rng = random.Random(20261125)
    return [rng.randbytes(size) for _ in range(count)]


def _deflated_ratio(messages: list[Any]) -> float | None:
    """What the client's compressor makes of the messages, in sequence: compressed size /
    size, with the negotiated settings (an estimate of the wire, not a measure of it)."""
    import zlib

    extension = _negotiated  # both libraries' extension objects have these attributes
    if extension is None:
        return None
    compressor = zlib.compressobj(
        wbits=-max(extension.local_max_window_bits, 9), **extension.compress_settings
    )
    raw = deflated = 0
    for message in messages * 2:
        data = message.encode() if isinstance(message, str) else message
        if extension.local_no_context_takeover:
            compressor = zlib.compressobj(
                wbits=-max(extension.local_max_window_bits, 9), **extension.compress_settings
            )
        raw += len(data)
        deflated += len(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4
    return deflated / raw


async def _echo_pipelined(
    ctx: Context, messages: list[Any], count: int, window: int
) -> dict[str, Any]:
    """Echo ``count`` messages (cycling through ``messages``), at most ``window`` in flight;
    every echo is checked against what was sent."""
    async with ctx.impl.connect(ctx.uri) as (send, recv):
        for message in messages:  # warm-up: each message once
            await send(message)
            if await recv() != message:
                raise AssertionError("the echo differs from the message")
        in_flight_send, in_flight_receive = anyio.create_memory_object_stream[None](window)
        n = len(messages)

        async def reader() -> None:
            for index in range(count):
                if await recv() != messages[index % n]:
                    raise AssertionError(f"echo {index} differs from the message")
                in_flight_receive.receive_nowait()

        meter = Meter(ctx.server_pid)
        start = time.perf_counter()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader)
            for index in range(count):
                await in_flight_send.send(None)
                await send(messages[index % n])
        elapsed = time.perf_counter() - start
        result = meter.result()
    return {
        "seconds": elapsed,
        "messages": count,
        "negotiated": repr(_negotiated),
        "deflated_ratio": _deflated_ratio(messages),
        **result,
    }


async def workload_compressed_json(ctx: Context) -> dict[str, Any]:
    """16 KiB JSON texts, compressible, pipelined with permessage-deflate on."""
    size, count = ctx.params["size"], ctx.params["messages"]
    messages = json_messages(ctx.params["distinct"], size)
    result = await _echo_pipelined(ctx, messages, count, ctx.params["window"])
    return {**result, "value": count / result["seconds"]}  # msgs/s


async def workload_compressed_random(ctx: Context) -> dict[str, Any]:
    """1 MiB of random bytes, incompressible, pipelined with permessage-deflate on."""
    size, count = ctx.params["size"], ctx.params["messages"]
    messages = random_messages(ctx.params["distinct"], size)
    result = await _echo_pipelined(ctx, messages, count, ctx.params["window"])
    return {**result, "value": count * size / result["seconds"] / 1e6}  # MB/s


WORKLOADS: dict[str, Callable[[Context], Awaitable[dict[str, Any]]]] = {
    "throughput": workload_throughput,
    "latency": workload_latency,
    "large": workload_large,
    "large-nowindow": workload_large,
    "fanin": workload_fanin,
    "handshakes": workload_handshakes,
    "memory": workload_memory,
    "compressed-json": workload_compressed_json,
    "compressed-random": workload_compressed_random,
}


# Entry points ---------------------------------------------------------------------------------


#: With ``ANYWS_E2E_PROFILE=DIR`` in the environment, each process runs under cProfile
#: and writes ``DIR/<role>-<impl>-<workload>-<pid>.prof`` (the server when it gets
#: SIGTERM, the client when it has its result). Profiling slows everything down: use
#: it to see where the time goes, not for the numbers.
PROFILE_DIR = os.environ.get("ANYWS_E2E_PROFILE")
_profiler: Any = None
_profile_path = ""


def _start_profiler(path: str) -> None:
    global _profiler, _profile_path
    import cProfile

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _profile_path = path
    _profiler = cProfile.Profile()
    _profiler.enable()


def _stop_profiler() -> None:
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(_profile_path)


def _emit(result: dict[str, Any]) -> None:
    """Print the result and leave at once, whatever is still running."""
    _stop_profiler()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_server(impl: Impl, workload: str | None) -> None:
    def ready(port: int) -> None:
        print(f"READY {port}", flush=True)

    _set_compression(workload)
    if _compressed and not impl.compression:
        raise SystemExit(f"{impl.name} has no default compression")

    if PROFILE_DIR:
        import signal

        def stop(signum: int, frame: object) -> None:
            _stop_profiler()
            os._exit(0)

        signal.signal(signal.SIGTERM, stop)
        _start_profiler(
            os.path.join(PROFILE_DIR, f"server-{impl.name}-{workload or 'any'}-{os.getpid()}.prof")
        )

    impl.run(lambda: impl.serve(ready))


def run_client(
    impl: Impl, workload: str, port: int, server_pid: int, params: dict[str, Any]
) -> None:
    ctx = Context(impl, f"ws://{HOST}:{port}/", server_pid, params)
    _set_compression(workload)
    if _compressed and not impl.compression:
        raise RuntimeError(f"{impl.name} has no default compression")
    if PROFILE_DIR:
        _start_profiler(
            os.path.join(PROFILE_DIR, f"client-{impl.name}-{workload}-{os.getpid()}.prof")
        )
    timeout = float(params.get("timeout", 60))

    async def main() -> None:
        async def watchdog() -> None:
            await anyio.sleep(timeout)
            _emit({"status": "timeout", "timeout_s": timeout})

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(watchdog)
            result = await WORKLOADS[workload](ctx)
            _emit({"status": "ok", **result})

    impl.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._e2e_peer")
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("impl", choices=sorted(IMPLS))
    parser.add_argument("workload", nargs="?", choices=sorted(WORKLOADS))
    parser.add_argument("--port", help="the server's port; '-': read it from standard input")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--params", default="{}", help="workload parameters, as JSON")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    impl = IMPLS[args.impl]
    if args.role == "server":
        run_server(impl, args.workload)
        return
    if args.workload is None or args.port is None or args.server_pid is None:
        parser.error("a client needs a workload, --port and --server-pid")
    # Started beside the server, to save time: the port comes when the server is ready.
    port = int(sys.stdin.readline() if args.port == "-" else args.port)
    try:
        run_client(impl, args.workload, port, args.server_pid, json.loads(args.params))
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        while len(getattr(exc, "exceptions", ())) == 1:  # an exception group of one
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        _emit({"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]})


if __name__ == "__main__":
    main()
