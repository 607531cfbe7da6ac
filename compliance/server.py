"""The anyws echo server that the Autobahn Testsuite's fuzzing client tests.

    python compliance/server.py --backend asyncio|trio --port PORT [--host HOST]

It echoes every message, text as text and binary as binary, until SIGINT or SIGTERM.
permessage-deflate is on, as by default (cases 12.* and 13.* test it).
`run.py` starts it once per backend and points ``wstest -m fuzzingclient`` at it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import anyio

import anyws


#: Case 9.1.6 sends a 16 MiB message and 9.2.6 a 16 MiB binary one: leave room above.
MAX_SIZE = 2**25


async def echo(websocket: anyws.ServerConnection) -> None:
    # A peer that fails the connection ends the loop with ConnectionClosedError, which
    # serve() logs at debug level: failing is what many cases expect.
    async for message in websocket:
        await websocket.send(message)


async def main(host: str, port: int) -> None:
    async with anyws.serve(
        echo,
        host,
        port,
        max_size=MAX_SIZE,
        # Messages of 4 MiB in 64-byte fragments (9.3.1, 9.4.1) are 65,536 frames:
        # max_queue counts whole messages, so it doesn't limit them, and MAX_SIZE
        # allows max(4096, MAX_SIZE / 256) = 131,072 frames per message.
        # Unsolicited keepalive pings would be unexpected frames in a case's wire log.
        ping_interval=None,
        # permessage-deflate with serve()'s defaults (compression="deflate"), which
        # 12.* and 13.* test: what a user of anyws gets.
    ) as server:
        print(f"listening on {host}:{server.port}", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    args = parser.parse_args()
    logging.basicConfig(
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        level=logging.DEBUG if args.verbose else logging.WARNING,
    )
    anyio.run(main, args.host, args.port, backend=args.backend)
    sys.exit(0)
