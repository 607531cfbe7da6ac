"""Structured concurrency with anyws: your tasks next to the connection's.

``producer_consumer`` sends and receives at the same time from two tasks of a task
group of yours; ``error_in_body`` shows that an exception raised in the body of
``async with anyws.connect(...)`` comes out as it is (never in an ExceptionGroup),
after the connection closed with 1011.

Run it with ``python examples/concurrency.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def handler(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(f"echo: {message!r}")


async def producer_consumer(uri: str, count: int = 3) -> list[str]:
    received: list[str] = []
    async with anyws.connect(uri) as websocket:

        async def produce() -> None:
            for i in range(count):
                await websocket.send(f"message {i}")

        async def consume() -> None:
            # One task receives (two tasks in recv() raise ConcurrencyError);
            # any number of tasks may send.
            while len(received) < count:
                received.append(await websocket.recv(decode=True))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                tg.start_soon(consume)
    return received


async def error_in_body(uri: str) -> tuple[str, int | None]:
    websocket = None
    try:
        async with anyws.connect(uri) as websocket:
            raise ValueError("bad input")
    except ValueError as exc:  # a plain ValueError: no ExceptionGroup to unwrap
        assert websocket is not None
        # Leaving the block closed the connection with 1011 (internal error).
        return str(exc), websocket.close_code


async def main() -> None:
    async with anyws.serve(handler, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        print(await producer_consumer(uri))
        print(await error_in_body(uri))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
