"""An echo server that shuts down gracefully on SIGTERM or Ctrl-C.

    python examples/graceful_shutdown.py [PORT [BACKEND]]

On the signal it stops accepting, closes every connection with 1012 (service restart), gives
the handlers 5 seconds to return, then cancels the rest and says how many it cancelled.
"""

from __future__ import annotations

import signal
import sys

import anyio

import anyws


async def echo(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main(port: int) -> None:
    # The signal receiver comes first, so that a signal right after start-up is handled too.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyws.serve(echo, "127.0.0.1", port) as server:
            print(f"listening on port {server.port}", flush=True)
            async for _ in signals:
                break
            cancelled = await server.aclose(1012, grace=5)
            print(f"stopped; {cancelled} handler(s) cancelled", flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    anyio.run(main, port, backend=backend)
