"""Memory per connection, measured with tracemalloc, with and without compression.

    python -m benchmarks.idle_memory [--connections 2000] [--backend asyncio|trio] [--top N]

For each side (server, client) and each ``compression`` setting (``None``,
``"deflate"``), this process runs that side under tracemalloc, and a child process
runs the other side. The number is the growth of traced memory (the Python heap and
what zlib allocates through it) divided by the number of connections, at two moments:

- **idle**: right after the opening handshakes;
- **after one message**: each connection received and sent one 16 KiB JSON text,
  so that permessage-deflate has built its compressor and decompressor, which it
  keeps between messages (context takeover).

tracemalloc doesn't see the kernel's socket buffers nor the event loop's own C
structures (uvloop), and RSS counts pages rather than objects: `benchmarks/e2e.py`
measures RSS growth instead. Expect this to read lower than RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc

import anyio

import anyws


#: A 16 KiB JSON text: compresses to about a fifth of its size.
MESSAGE = json.dumps(
    [{"id": i, "name": f"user{i}", "active": i % 3 == 0, "score": i * 7 % 101} for i in range(320)]
)[: 16 * 1024]


def _compression(value: str) -> str | None:
    return None if value == "none" else value


async def _echo(ws: anyws.ServerConnection) -> None:
    # Not ``async for message in ws``, whose variable would keep the last message alive.
    while True:
        await ws.send(await ws.recv())


async def _wait_for_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        data += await stream.receive()
    return data


async def _peer(role: str, port: int, count: int, compression: str | None, message: bool) -> None:
    """The child: the other side of the measured connections; exits on a line of stdin."""
    stdin = anyio.wrap_file(sys.stdin)
    if role == "server":
        async with anyws.serve(_echo, "127.0.0.1", 0, compression=compression) as server:
            print(server.port, flush=True)
            await stdin.readline()
        return
    async with anyio.create_task_group() as tg:
        done = anyio.Event()
        ready = 0

        async def one() -> None:
            nonlocal ready
            uri = f"ws://127.0.0.1:{port}/"
            async with anyws.connect(uri, compression=compression) as ws:
                if message:
                    await ws.send(MESSAGE)
                    await ws.recv()
                ready += 1
                if ready == count:
                    print("ready", flush=True)
                await done.wait()

        for _ in range(count):
            tg.start_soon(one)
        await stdin.readline()
        done.set()


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.idle_memory", "--peer", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _print_top(before: tracemalloc.Snapshot, count: int, top: int) -> None:
    """The ``top`` lines of code whose allocations grew most, per connection."""
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
    print(f"  server, top {top} allocation sites, bytes per connection:")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(f"    {stat.size_diff / count:8.0f}  {frame.filename}:{frame.lineno}")


async def _measure_server(
    count: int, compression: str | None, message: bool, backend: str, top: int = 0
) -> float:
    tracemalloc.start()
    try:
        async with anyws.serve(_echo, "127.0.0.1", 0, compression=compression) as server:
            before = _traced()
            snapshot = tracemalloc.take_snapshot() if top else None
            child = _spawn(
                ["client", "--port", str(server.port), "--connections", str(count)]
                + ["--compression", str(compression).lower()]
                + (["--message"] if message else [])
                + ["--backend", backend]
            )
            assert child.stdout is not None
            assert child.stdin is not None
            await anyio.to_thread.run_sync(child.stdout.readline)
            assert len(server.connections) == count
            after = _traced()
            if snapshot is not None:
                _print_top(snapshot, count, top)
            child.stdin.write("\n")
            child.stdin.flush()
            await anyio.to_thread.run_sync(child.wait)
    finally:
        tracemalloc.stop()
    return (after - before) / count


async def _measure_client(
    count: int, compression: str | None, message: bool, backend: str
) -> float:
    child = _spawn(
        ["server", "--port", "0", "--compression", str(compression).lower(), "--backend", backend]
    )
    assert child.stdout is not None
    assert child.stdin is not None
    port = int(await anyio.to_thread.run_sync(child.stdout.readline))
    tracemalloc.start()
    try:
        before = _traced()
        async with anyio.create_task_group() as tg:
            done = anyio.Event()
            opened = anyio.Event()
            ready = 0

            async def one() -> None:
                nonlocal ready
                uri = f"ws://127.0.0.1:{port}/"
                async with anyws.connect(uri, compression=compression) as ws:
                    if message:
                        await ws.send(MESSAGE)
                        await ws.recv()
                    ready += 1
                    if ready == count:
                        opened.set()
                    await done.wait()

            for _ in range(count):
                tg.start_soon(one)
            await opened.wait()
            after = _traced()
            done.set()
    finally:
        tracemalloc.stop()
        child.stdin.write("\n")
        child.stdin.flush()
        await anyio.to_thread.run_sync(child.wait)
    return (after - before) / count


async def _main(count: int, backend: str, top: int) -> None:
    if top:
        # Only the idle server without compression, with where its memory goes.
        idle = await _measure_server(count, None, False, backend, top)
        print(f"server, no compression, idle: {idle / 1024:.1f} KiB per connection")
        return
    print(f"tracemalloc growth per connection, {count} connections, {backend}")
    print(f"{'side':8}  {'compression':11}  {'idle':>9}  {'after one message':>17}")
    for side, measure in (("server", _measure_server), ("client", _measure_client)):
        for compression in (None, "deflate"):
            idle = await measure(count, compression, False, backend)
            busy = await measure(count, compression, True, backend)
            print(
                f"{side:8}  {compression!s:11}  {idle / 1024:5.1f} KiB  {busy / 1024:13.1f} KiB",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument(
        "--top",
        type=int,
        default=0,
        metavar="N",
        help="only the idle server without compression, and its N biggest allocation sites",
    )
    parser.add_argument("--peer", choices=["server", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--compression", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--message", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        anyio.run(
            _peer,
            args.peer,
            args.port,
            args.connections,
            _compression(args.compression),
            args.message,
            backend=args.backend,
        )
    else:
        anyio.run(_main, args.connections, args.backend, args.top, backend=args.backend)


if __name__ == "__main__":
    main()
