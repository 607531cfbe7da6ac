"""Application-level heartbeats, next to anyws' own keepalive pings.

anyws answers pings and sends its own (``ping_interval``); that proves the peer's
WebSocket stack is alive. When you need to know that the *application* on the other
side is alive (or the peer is a browser, whose JavaScript can't send pings), send
heartbeat messages of your own. Here the server sends ``{"type": "heartbeat"}``
every ``interval`` seconds and closes with 4000 when an answer doesn't come back
within ``answer_within``.

Run it with ``python examples/heartbeat.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse
import json

import anyio

import anyws


async def handler(
    websocket: anyws.ServerConnection, *, interval: float = 10, answer_within: float = 5
) -> None:
    answered = anyio.Event()

    async def send_heartbeats() -> None:
        nonlocal answered
        while True:
            await anyio.sleep(interval)
            answered = anyio.Event()
            try:
                await websocket.send(json.dumps({"type": "heartbeat"}))
            except anyws.ConnectionClosed:
                return  # never let an exception escape a task: it would cancel the others
            with anyio.move_on_after(answer_within) as scope:
                await answered.wait()
            if scope.cancelled_caught:
                await websocket.close(4000, "heartbeat timeout")
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_heartbeats)
        try:
            async for message in websocket:
                event = json.loads(message)
                if event["type"] == "heartbeat-ack":
                    answered.set()
                else:
                    await websocket.send(json.dumps({"type": "echo", "data": event["data"]}))
        except anyws.ConnectionClosed:
            pass  # closed by send_heartbeats (4000), or the connection was lost
        finally:
            tg.cancel_scope.cancel()  # the connection is over: stop the heartbeats


async def client(uri: str, *, beats: int = 2) -> list[str]:
    """Answer ``beats`` heartbeats, then stop answering; return what was seen."""
    seen = []
    async with anyws.connect(uri) as websocket:
        await websocket.send(json.dumps({"type": "hello", "data": "hi"}))
        try:
            async for message in websocket:
                event = json.loads(message)
                seen.append(event["type"])
                if event["type"] == "heartbeat" and beats > 0:
                    beats -= 1
                    await websocket.send(json.dumps({"type": "heartbeat-ack"}))
        except anyws.ConnectionClosedError:
            pass  # a close code other than 1000/1001: 4000 here
        seen.append(f"closed: {websocket.close_code} {websocket.close_reason}")
    return seen


async def main(interval: float = 0.5, answer_within: float = 0.5) -> None:
    async def serve_one(websocket: anyws.ServerConnection) -> None:
        await handler(websocket, interval=interval, answer_within=answer_within)

    async with anyws.serve(serve_one, "127.0.0.1", 0) as server:
        print(await client(f"ws://127.0.0.1:{server.port}/"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
