"""The same echo server, with trio-websocket (trio only) and with anyws (trio or asyncio).

Run it with ``python examples/migrating/from_trio_websocket.py --backend trio``
(``--library trio-websocket`` for the version before the migration, which needs
trio-websocket installed and trio).
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

import anyws


async def trio_websocket_echo(request: Any) -> None:
    """Before: trio-websocket's handler gets a request, and accepts it."""
    from trio_websocket import ConnectionClosed

    ws = await request.accept()
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            break
        await ws.send_message(message)


async def anyws_echo(ws: anyws.ServerConnection) -> None:
    """After: anyws' handler gets the open connection; the loop ends on a normal close."""
    async for message in ws:
        await ws.send(message)


async def main(library: str, port: int) -> None:
    if library == "trio-websocket":
        import trio
        from trio_websocket import serve_websocket

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                serve_websocket, trio_websocket_echo, "127.0.0.1", port, None
            )
            print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
    else:
        async with anyws.serve(anyws_echo, "127.0.0.1", port) as server:
            print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
            await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--library", choices=["anyws", "trio-websocket"], default="anyws")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.library, args.port, backend=args.backend)
