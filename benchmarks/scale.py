"""Many connections, many processes, one audience: fan-out through Redis.

Two server worker processes; N client connections spread over them, opened by
separate client processes; every connection subscribed to one channel. The main
process publishes a message to Redis every 100 ms (``PUBLISH``, straight over a socket)
and every client records how long each message took to reach it. Then the same
workload with websockets and redis-py, in its documented pattern (one pub/sub
subscriber per process, ``websockets.broadcast`` to the process's clients), in the
same run.

    python -m benchmarks.scale                        # 10,000 connections, 10 s
    python -m benchmarks.scale --connections 2000 --duration 5 --impl anyws

Reported, for each implementation: delivery latency over every (message, client)
pair (p50, p99, max) and how many deliveries were missing, server memory per
connection (the workers' RSS after connecting minus before, divided by the
connections), and the workers' CPU time while publishing, per delivered message.
The clients are a minimal raw WebSocket client (a handshake, then unmasked frames
parsed in ``data_received``) on asyncio (uvloop when it imports), the same for both
servers, so that the clients cost as little CPU as possible on a small machine;
their latency includes their own scheduling delays. The CPU time runs from the first
publication until every client has received everything (a last ``stop`` message).
Keepalive pings and compression are off on both servers (the raw clients don't
answer pings, and broadcast frames go out uncompressed anyway). Needs
``redis-server`` on PATH (Debian's package), and for the anchor websockets and redis
(redis-py).

``ANYWS_SCALE_PROFILE=DIR`` saves a cProfile of each worker in DIR.

Not a test: nothing here asserts a number. Results go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any


CHANNEL = "bench"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Servers ----------------------------------------------------------------------------


async def anyws_server(port: int, redis_url: str) -> None:
    import anyws

    async with anyws.RedisHub(redis_url) as hub:

        async def handler(websocket: anyws.ServerConnection) -> None:
            async with hub.subscribe(websocket, CHANNEL):
                await websocket.wait_closed()

        async with anyws.serve(
            handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=4096
        ) as server:
            print(f"ready {server.port}", flush=True)
            await server.serve_forever()


async def websockets_server(port: int, redis_url: str) -> None:
    import redis.asyncio
    import websockets
    from websockets.asyncio.server import serve

    clients: set[Any] = set()

    async def handler(websocket: Any) -> None:
        clients.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            clients.remove(websocket)

    async def relay() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message["type"] == "message":
                websockets.broadcast(clients, message["data"].decode())

    async with serve(
        handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=4096
    ) as server:
        relaying = asyncio.create_task(relay())
        print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()
        relaying.cancel()  # pragma: no cover


def run_server(impl: str, port: int, redis_url: str) -> None:
    raise_fd_limit()
    if directory := os.environ.get("ANYWS_SCALE_PROFILE"):
        # cProfile the worker; SIGUSR1 (sent before the worker is killed) saves it.
        import cProfile

        profiler = cProfile.Profile()

        def save(signum: int, frame: Any) -> None:
            profiler.disable()
            profiler.dump_stats(os.path.join(directory, f"{impl}-{os.getpid()}.prof"))

        signal.signal(signal.SIGUSR1, save)
        profiler.enable()
    if impl == "anyws":
        import anyio

        options: dict[str, Any] = {}
        try:
            import uvloop

            options["loop_factory"] = uvloop.new_event_loop
        except ImportError:
            pass
        anyio.run(anyws_server, port, redis_url, backend="asyncio", backend_options=options)
    else:
        _asyncio_run(websockets_server(port, redis_url))


def _asyncio_run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# Clients ----------------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A WebSocket client that only receives small unmasked frames: cheap on purpose."""

    def __init__(self, latencies: list[int], stopped: asyncio.Event, opened: asyncio.Future[None]):
        self.latencies = latencies
        self.stopped = stopped
        self.opened = opened
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buffer = self.buffer + data
        if not self.upgraded:
            head, separator, buffer = buffer.partition(b"\r\n\r\n")
            if not separator:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(OSError(head.split(b"\r\n")[0].decode()))
                return
            self.upgraded = True
            self.opened.set_result(None)
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length = int.from_bytes(buffer[2:4], "big")
                start = 4
            if len(buffer) < start + length:
                break
            payload = buffer[start : start + length]
            buffer = buffer[start + length :]
            if payload == b"stop":
                self.stopped.set()
            elif payload:
                self.latencies.append((now - int(payload.split()[1])) // 1000)
        self.buffer = buffer


async def clients(ports: list[int], count: int) -> None:
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    stops: list[asyncio.Event] = []
    transports = []
    limit = asyncio.Semaphore(100)

    async def open_one(index: int) -> None:
        stopped = asyncio.Event()
        opened: asyncio.Future[None] = loop.create_future()
        async with limit:
            transport, _ = await loop.create_connection(
                lambda: RawClient(latencies, stopped, opened),
                "127.0.0.1",
                ports[index % len(ports)],
            )
            await opened
        stops.append(stopped)
        transports.append(transport)

    await asyncio.gather(*(open_one(index) for index in range(count)))
    print("connected", flush=True)
    await asyncio.gather(*(stopped.wait() for stopped in stops))
    print(json.dumps(latencies), flush=True)
    for transport in transports:
        transport.close()


def run_clients(ports: list[int], count: int) -> None:
    raise_fd_limit()
    _asyncio_run(clients(ports, count))


# The run ----------------------------------------------------------------------------


def publish(sock: socket.socket, payload: bytes) -> int:
    parts = [b"PUBLISH", CHANNEL.encode(), payload]
    command = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
    sock.sendall(command)
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += sock.recv(64)
    return int(reply[1:-2])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")  # pragma: no cover


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scale", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def workload(impl: str, redis_port: int, args: argparse.Namespace) -> dict[str, Any]:
    redis_url = f"redis://127.0.0.1:{redis_port}"
    servers = [spawn("--serve", impl, "--redis", redis_url) for _ in range(2)]
    client_processes: list[subprocess.Popen[str]] = []
    try:
        ports = []
        for server in servers:
            assert server.stdout is not None
            ports.append(int(server.stdout.readline().split()[1]))
        rss_before = sum(rss_kib(server.pid) for server in servers)
        shares = [args.connections // args.clients] * args.clients
        shares[0] += args.connections - sum(shares)
        started = time.monotonic()
        client_processes = [
            spawn("--clients-for", ",".join(map(str, ports)), "--count", str(share))
            for share in shares
        ]
        for process in client_processes:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line == "connected", line
        connect_time = time.monotonic() - started
        rss_after = sum(rss_kib(server.pid) for server in servers)
        with socket.create_connection(("127.0.0.1", redis_port)) as redis:
            # Both workers subscribed: every client is, once its handler runs.
            cpu_before = sum(cpu_seconds(server.pid) for server in servers)
            messages = int(args.duration / 0.1)
            next_time = time.monotonic()
            for seq in range(messages):
                receivers = publish(redis, b"%d %d" % (seq, time.monotonic_ns()))
                assert receivers == 2, receivers
                next_time += 0.1
                time.sleep(max(0.0, next_time - time.monotonic()))
            # "stop" comes after every message on each connection: once every client
            # has it (and has reported), the servers have done all the work.
            publish(redis, b"stop")
            latencies: list[int] = []
            for process in client_processes:
                assert process.stdout is not None
                latencies += json.loads(process.stdout.readline())
            cpu_after = sum(cpu_seconds(server.pid) for server in servers)
        for process in client_processes:
            process.wait(timeout=60)
    finally:
        if os.environ.get("ANYWS_SCALE_PROFILE"):
            for server in servers:
                server.send_signal(signal.SIGUSR1)
            time.sleep(2)
        for process in [*client_processes, *servers]:
            if process.poll() is None:
                process.kill()
            process.wait()
    expected = messages * args.connections
    latencies.sort()
    return {
        "impl": impl,
        "connections": args.connections,
        "messages": messages,
        "delivered": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": statistics.median(latencies) / 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] / 1000 if latencies else None,
        "max_ms": latencies[-1] / 1000 if latencies else None,
        "rss_per_connection_kib": (rss_after - rss_before) / args.connections,
        # The stop messages are deliveries too.
        "cpu_us_per_delivery": (cpu_after - cpu_before) / (len(latencies) + args.connections) * 1e6,
        "connect_s": connect_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--duration", type=float, default=10, help="seconds of publishing")
    parser.add_argument("--impl", choices=["anyws", "websockets", "both"], default="both")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--clients-for", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.serve, 0, args.redis)
        return
    if args.clients_for:
        run_clients([int(port) for port in args.clients_for.split(",")], args.count)
        return

    raise_fd_limit()
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", redis_port)).close()
                break
            except OSError:
                time.sleep(0.05)
        impls = ["anyws", "websockets"] if args.impl == "both" else [args.impl]
        results = [workload(impl, redis_port, args) for impl in impls]
    finally:
        redis.terminate()
        redis.wait()
    header = (
        "| server | connections | p50 | p99 | max | missing | RSS/conn | CPU/delivery |"
        "\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.duration:g} s")
    print(header)
    for r in results:
        print(
            f"| {r['impl']} | {r['connections']:,} | {r['p50_ms']:.1f} ms | "
            f"{r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms | {r['missing']:,} | "
            f"{r['rss_per_connection_kib']:.1f} KiB | {r['cpu_us_per_delivery']:.1f} µs |"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
