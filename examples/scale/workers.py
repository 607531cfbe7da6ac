"""Pre-fork workers: one listening socket, bound once, served by N worker processes.

    python examples/scale/workers.py --workers 4 --port 8765 [--backend trio]

The parent binds the port, then starts each worker with the socket as an inherited
file descriptor; every worker runs ``anyws.serve(handler, sock=...)`` on it and the
kernel hands each new connection to one of them. The parent only supervises: a worker
that dies is started again, and SIGTERM or Ctrl-C stops them all, each closing its
connections with 1001 (going away) first.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import threading

import anyio

import anyws


# The worker -----------------------------------------------------------------------


async def handler(websocket: anyws.ServerConnection) -> None:
    await websocket.send(f"worker {os.getpid()}")
    async for message in websocket:
        await websocket.send(message)


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def worker(fd: int, parent_fd: int) -> None:
    # Ctrl-C in a terminal signals the whole process group: the workers too.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        sock = socket.socket(fileno=fd)  # the inherited listening socket
        async with anyws.serve(handler, sock=sock), anyio.create_task_group() as tasks:

            async def stop_with_the_parent() -> None:
                # The parent holds the pipe's other end: it reads as closed once the
                # parent is gone, even killed, so no worker outlives it.
                await anyio.wait_readable(parent_fd)
                tasks.cancel_scope.cancel()

            tasks.start_soon(stop_with_the_parent)
            # One write for the whole line: the workers share the parent's stdout.
            sys.stdout.write(f"worker {os.getpid()} started\n")
            sys.stdout.flush()
            async for _ in signals:
                break  # leaving serve() closes the connections with 1001
            tasks.cancel_scope.cancel()


# The supervisor -------------------------------------------------------------------


def start_worker(sock: socket.socket, parent_fd: int, backend: str) -> subprocess.Popen[bytes]:
    fd = sock.fileno()
    command = [sys.executable, __file__, "--backend", backend, "--worker-fd", str(fd)]
    command += ["--parent-fd", str(parent_fd)]
    return subprocess.Popen(command, pass_fds=[fd, parent_fd])


def supervise(port: int, workers: int, backend: str) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())

    sock = socket.create_server(("127.0.0.1", port), backlog=1024)
    print(f"listening on ws://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
    # The workers watch the read end; this process holds the write end until it exits.
    parent_fd, _alive = os.pipe()
    running = [start_worker(sock, parent_fd, backend) for _ in range(workers)]
    while not stop.wait(0.1):
        for index, process in enumerate(running):
            if process.poll() is not None:
                print(f"worker {process.pid} died ({process.returncode}); restarting", flush=True)
                running[index] = start_worker(sock, parent_fd, backend)

    for process in running:
        process.terminate()  # each closes its connections with 1001, then exits
    for process in running:
        process.wait()
    sock.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_fd is not None:
        raise_open_files_limit()
        anyio.run(worker, args.worker_fd, args.parent_fd, backend=args.backend)
    else:
        supervise(args.port, args.workers, args.backend)
