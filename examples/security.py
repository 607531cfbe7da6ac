"""A server with the limits that matter when it faces the internet.

Run it with ``python examples/security.py [--port 8765]``.
"""

from __future__ import annotations

import argparse

import anyio

import anyws


async def handler(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


def serve(port: int = 8765) -> anyws.serve:
    return anyws.serve(
        handler,
        "127.0.0.1",
        port,
        # Browsers send the page's origin: refuse pages from elsewhere (403). Add
        # None to the list to let in clients that send no Origin (not browsers).
        origins=["https://chat.example.com"],
        max_size=64 * 1024,  # largest message: larger ones close the connection with 1009
        max_queue=4,  # messages waiting for recv(); then TCP pushes back on the client
        open_timeout=5,  # a client that doesn't finish the opening handshake is dropped
        close_timeout=5,
    )


async def main(port: int) -> None:
    async with serve(port) as server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
