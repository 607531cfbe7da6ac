"""An anyws server meant to run behind nginx (see ``anyws.conf`` next to this file).

Behind a proxy, ``websocket.remote_address`` is the proxy's address. The client's is
in ``X-Forwarded-For``, which the proxy appends to: trust only the last entry, the one
your own proxy added (earlier entries come from the client and can be forged).

Run it with ``python examples/nginx/app.py [--port 8765]``, once per port of the
``upstream`` block. SIGTERM or Ctrl-C closes the connections with 1001 and stops it.
"""

from __future__ import annotations

import argparse
import signal

import anyio

import anyws


#: The addresses of your proxies: only they may say who the client is.
TRUSTED_PROXIES = {"127.0.0.1", "::1"}


def client_address(websocket: anyws.ServerConnection) -> str:
    """The client's IP address, from X-Forwarded-For when a trusted proxy set it."""
    peer = str(websocket.remote_address[0])
    assert websocket.request is not None
    forwarded = websocket.request.headers.get_all("X-Forwarded-For")
    if peer in TRUSTED_PROXIES and forwarded:
        # The last address of the last header is the one our proxy added.
        return forwarded[-1].split(",")[-1].strip()
    return peer


async def handler(websocket: anyws.ServerConnection) -> None:
    address = client_address(websocket)
    async for message in websocket:
        if isinstance(message, str):  # text only
            await websocket.send(f"{address} said: {message}")


async def main(port: int) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyws.serve(handler, "127.0.0.1", port) as server:
            print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
            async for _ in signals:
                break  # leaving serve() closes the connections with 1001: nginx passes it on


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
