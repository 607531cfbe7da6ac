"""The code of docs/howto/routing.md: handlers by path, and open routes."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import anyio

import anyws


# [route]
async def lobby(connection: anyws.ServerConnection) -> None:
    await connection.send("welcome to the lobby")


async def room(connection: anyws.ServerConnection, room: str) -> None:
    await connection.send(f"welcome to {room}")


handlers: dict[str, Callable[..., Awaitable[None]]] = {"/": lobby, "/rooms/{room}": room}


async def main(port: int = 8765) -> None:
    async with anyws.route(handlers, "localhost", port) as server:
        print(f"listening on ws://localhost:{server.port}/", flush=True)
        await server.serve_forever()
        # [/route]


# [public]
auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))


async def process_request(
    connection: anyws.ServerConnection, request: anyws.Request
) -> anyws.Response | None:
    if request.path.partition("?")[0] == "/public":
        return None  # no credentials needed on this route
    return await auth(connection, request)


async def public(connection: anyws.ServerConnection) -> None:
    await connection.send("no password needed here")


def serve(port: int = 8765) -> anyws.serve:
    """The routes above, and ``/public``, behind `process_request`."""
    return anyws.route(
        {**handlers, "/public": public}, "localhost", port, process_request=process_request
    )
    # [/public]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
