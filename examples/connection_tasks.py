"""Tasks of a connection's own: ``connection.start_soon`` and ``await connection.start``.

The server's handler pushes updates from a task of the connection while it reads;
the client relays what it receives into a memory object stream from another task.
Neither opens a task group: the tasks run in the connection's, and are cancelled when
the connection closes. ``error_in_task`` shows that an exception raised in such a task
comes out of ``async with anyws.connect(...)`` as it is, after the connection closed
with 1011.

Run it with ``python examples/connection_tasks.py`` (add ``--backend trio``).
"""

from __future__ import annotations

import argparse

import anyio
import anyio.abc

import anyws


async def push_updates(websocket: anyws.ServerConnection, count: int) -> None:
    for n in range(count):
        await websocket.send(f"update {n}")
    # Nothing more to push: this task ends, or is cancelled when the connection closes.


async def handler(websocket: anyws.ServerConnection) -> None:
    websocket.start_soon(push_updates, websocket, 3)
    async for message in websocket:  # the handler reads meanwhile
        await websocket.send(f"echo {message!s}")


async def client(uri: str) -> list[str]:
    async with anyws.connect(uri) as websocket:
        send, receive = anyio.create_memory_object_stream[str](16)

        async def relay(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            async with send:
                task_status.started()
                async for message in websocket:
                    await send.send(str(message))

        await websocket.start(relay)  # returns once relay() called started()
        await websocket.send("hello")
        async with receive:
            received = [await receive.receive() for _ in range(4)]
    # Leaving the block closed the connection and cancelled relay().
    return sorted(received)


async def error_in_task(uri: str) -> tuple[str, int | None]:
    async def check(websocket: anyws.ClientConnection) -> None:
        message = await websocket.recv()
        raise ValueError(f"unexpected {message!r}")

    websocket = None
    try:
        async with anyws.connect(uri) as websocket:
            websocket.start_soon(check, websocket)
            await websocket.send("ping")
            await anyio.sleep_forever()  # cancelled when check() fails
    except ValueError as exc:  # a plain ValueError: no ExceptionGroup to unwrap
        assert websocket is not None
        return str(exc), websocket.close_code  # closed with 1011 (internal error)
    raise AssertionError("unreachable")


async def main() -> None:
    async with anyws.serve(handler, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        print(await client(uri))
        print(await error_in_task(uri))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, backend=args.backend)
