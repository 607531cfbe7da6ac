"""The examples in the docstring of `anyws.basic_auth`.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws


async def handler(connection: anyws.ServerConnection) -> None:
    await connection.send(f"hello {connection.username}")


# [serve]
async def main(port: int = 8765) -> None:
    auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))
    async with anyws.serve(handler, "localhost", port, process_request=auth) as server:
        print(f"listening on ws://localhost:{server.port}/")
        await server.serve_forever()
        # [/serve]


# [combined]
auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))


async def process_request(
    connection: anyws.ServerConnection, request: anyws.Request
) -> anyws.Response | None:
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    return await auth(connection, request)
    # [/combined]
