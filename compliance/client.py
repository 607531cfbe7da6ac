"""The anyws echo client that the Autobahn Testsuite's fuzzing server tests.

    python compliance/client.py --backend asyncio|trio --uri ws://HOST:PORT --agent NAME

It asks ``wstest -m fuzzingserver`` how many cases it has (``/getCaseCount``), runs
each one by connecting to ``/runCase?case=N&agent=NAME`` and echoing every message,
text as text and binary as binary, until the server closes, then has the reports
written (``/updateReports?agent=NAME``). `run.py` starts it once per backend.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.parse

import anyio

import anyws


#: As in server.py: case 9.1.6 sends a 16 MiB message.
MAX_SIZE = 2**25
#: Bound on one case. wstest ends every case itself (its slowest, 9.*, take seconds);
#: this only keeps a hung case from hanging the run.
CASE_TIMEOUT = 120


def open_connection(uri: str) -> anyws.connect:
    return anyws.connect(
        uri,
        max_size=MAX_SIZE,
        # Unsolicited keepalive pings would be unexpected frames in a case's wire log.
        ping_interval=None,
        # permessage-deflate offered with connect()'s defaults (compression="deflate"),
        # which 12.* and 13.* test: what a user of anyws gets.
    )


async def get_case_count(base: str) -> int:
    async with open_connection(f"{base}/getCaseCount") as websocket:
        return int(json.loads(await websocket.recv()))


async def run_case(base: str, case: int, agent: str) -> str | None:
    """Run one case; return a description of what went wrong on our side, if anything."""
    query = urllib.parse.urlencode({"case": case, "agent": agent})
    try:
        with anyio.fail_after(CASE_TIMEOUT):
            async with open_connection(f"{base}/runCase?{query}") as websocket:
                async for message in websocket:
                    await websocket.send(message)
    except anyws.ConnectionClosed:
        # The connection failed: that is what many cases test; wstest judges it.
        return None
    except (OSError, TimeoutError, anyws.InvalidHandshake) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def update_reports(base: str, agent: str) -> None:
    query = urllib.parse.urlencode({"agent": agent})
    async with open_connection(f"{base}/updateReports?{query}") as websocket:
        # wstest writes the reports, then closes: wait for its close.
        async for _ in websocket:
            pass


async def main(base: str, agent: str) -> int:
    count = await get_case_count(base)
    print(f"{agent}: {count} cases", flush=True)
    errors = 0
    started = time.monotonic()
    for case in range(1, count + 1):
        problem = await run_case(base, case, agent)
        if problem is not None:
            errors += 1
            print(f"{agent}: case #{case}: {problem}", flush=True)
        if case % 50 == 0:
            print(f"{agent}: {case} of {count} ({time.monotonic() - started:.0f}s)", flush=True)
    await update_reports(base, agent)
    print(f"{agent}: done in {time.monotonic() - started:.0f}s", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], required=True)
    parser.add_argument("--uri", required=True, help="the fuzzing server, ws://host:port")
    parser.add_argument("--agent", required=True, help="the name in wstest's reports")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    args = parser.parse_args()
    logging.basicConfig(
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        level=logging.DEBUG if args.verbose else logging.WARNING,
    )
    sys.exit(anyio.run(main, args.uri.rstrip("/"), args.agent, backend=args.backend))
