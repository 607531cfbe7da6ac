"""Command line: an echo server and an interactive client.

    python -m anyws serve [--host H] [--port P] [--backend asyncio|trio]
    python -m anyws ws://localhost:8765/ [--backend asyncio|trio]
    python -m anyws demo [--backend asyncio|trio]

``demo`` runs both in one process: an echo server on a free port of 127.0.0.1
and the interactive client connected to it.

The client sends each line typed and prints each message received; Ctrl-D
(end of input) closes the connection.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys

import anyio

from . import ConnectionClosed, ConnectionClosedOK, ServerConnection, connect, serve
from .exceptions import InvalidHandshake, InvalidURI


#: How long the client waits, at the end of its input, for replies to what it sent.
REPLY_GRACE = 1.0


async def echo(websocket: ServerConnection) -> None:
    """Send every message received back to its sender."""
    async for message in websocket:
        await websocket.send(message)


async def run_server(host: str, port: int) -> None:
    # Signals first: a Ctrl-C right after the "listening" line must stop cleanly too.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve(echo, host, port) as server:
            for address in server.sockets:
                print(f"echo server listening on {address[0]}:{address[1]}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            async for _ in signals:
                print("stopping", flush=True)
                return


async def run_client(uri: str) -> int:
    try:
        async with connect(uri) as websocket:
            print(f"connected to {uri}; type a message and press Enter, Ctrl-D to quit", flush=True)
            sent = received = 0
            caught_up = anyio.Event()
            async with anyio.create_task_group() as task_group:

                async def print_messages() -> None:
                    nonlocal received, caught_up
                    try:
                        async for message in websocket:
                            print(f"< {message!r}", flush=True)
                            received += 1
                            if received >= sent:
                                caught_up.set()
                        print(f"connection closed: {websocket.protocol.close_exc}", flush=True)
                    except ConnectionClosed as exc:
                        print(f"connection closed: {exc}", flush=True)
                    # The connection is gone: stop waiting for input.
                    task_group.cancel_scope.cancel()

                task_group.start_soon(print_messages)
                readline = functools.partial(sys.stdin.readline)
                while True:
                    line = await anyio.to_thread.run_sync(readline, abandon_on_cancel=True)
                    if not line:  # Ctrl-D
                        break
                    try:
                        await websocket.send(line.rstrip("\n"))
                    except ConnectionClosed:
                        break
                    sent += 1
                    if received < sent:
                        caught_up = anyio.Event()
                # End of input: give replies up to a second to arrive (with piped
                # input, closing at once would cut the echoes off), then close.
                with anyio.move_on_after(REPLY_GRACE):
                    if received < sent:
                        await caught_up.wait()
                await websocket.close()
    except ConnectionClosedOK:
        return 0
    except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
        print(f"failed to connect to {uri}: {exc}", file=sys.stderr)
        return 1
    return 0


async def run_demo() -> int:
    async with serve(echo, "127.0.0.1", 0) as server:
        print(f"echo server listening on 127.0.0.1:{server.port}", flush=True)
        return await run_client(f"ws://127.0.0.1:{server.port}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m anyws",
        description="An anyws echo server (serve) or an interactive WebSocket client (URI).",
    )
    parser.add_argument(
        "target",
        help="'serve' to run an echo server, 'demo' to run one and talk to it, "
        "or a ws:// or wss:// URI to connect to",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on")
    parser.add_argument("--port", type=int, default=8765, help="port to serve on")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    args = parser.parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(name)s %(message)s",
        level=logging.DEBUG if args.verbose else logging.WARNING,
    )
    try:
        if args.target == "serve":
            anyio.run(run_server, args.host, args.port, backend=args.backend)
            return 0
        if args.target == "demo":
            return anyio.run(run_demo, backend=args.backend)
        return anyio.run(run_client, args.target, backend=args.backend)
    except InvalidURI as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
