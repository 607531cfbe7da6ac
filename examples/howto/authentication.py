"""The code of docs/howto/authentication.md: HTTP Basic auth on a server and a client.

The files under ``examples/howto/`` and ``examples/topics/`` hold the code shown in
the prose of a page; ``tests/test_docs_snippets.py`` imports them and runs them.
"""

from __future__ import annotations

import argparse
import base64
import http

import anyio

import anyws


# [server]
async def handler(connection: anyws.ServerConnection) -> None:
    await connection.send(f"hello {connection.username}")


auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))


async def main(port: int = 8765) -> None:
    async with anyws.serve(handler, "localhost", port, process_request=auth) as server:
        print(f"listening on ws://localhost:{server.port}/", flush=True)
        await server.serve_forever()
        # [/server]


async def client(uri: str) -> anyws.Data:
    # [client]
    token = base64.b64encode(b"alice:s3cr3t").decode()
    async with anyws.connect(uri, additional_headers={"Authorization": f"Basic {token}"}) as ws:
        greeting = await ws.recv()  # "hello alice"
    # [/client]
    return greeting


# [combined]
async def process_request(
    connection: anyws.ServerConnection, request: anyws.Request
) -> anyws.Response | None:
    if request.path == "/healthz":  # no credentials needed
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return await auth(connection, request)
    # [/combined]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
