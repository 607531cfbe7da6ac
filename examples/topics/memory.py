"""The code of docs/topics/memory.md: permessage-deflate without context takeover."""

from __future__ import annotations

import anyws


async def handler(connection: anyws.ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def serve(host: str = "localhost", port: int = 8765) -> anyws.serve:
    # [no-context-takeover]
    from anyws.sansio.extensions import ServerPerMessageDeflateFactory

    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    server = anyws.serve(handler, host, port, extensions=[factory])
    # [/no-context-takeover]
    return server
