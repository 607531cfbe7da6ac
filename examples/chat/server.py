"""A small chat: one HTML page, and a WebSocket that relays messages between tabs.

    python -m examples.chat [--port 8000] [--host 127.0.0.1] [--backend trio]
    python examples/chat/server.py [...]

then open http://127.0.0.1:8000/ in two browser tabs. The same anyws server answers
both: a plain ``GET /`` gets the page (from ``process_request``, before any WebSocket
handshake), and the page's JavaScript opens a WebSocket to ``/ws``. Every message
received is sent to every connected client, the sender included.
"""

from __future__ import annotations

import argparse
import http
import pathlib

import anyio

import anyws


#: The page, read once at start-up.
PAGE = (pathlib.Path(__file__).parent / "index.html").read_text(encoding="utf-8")

#: The longest message relayed, in characters: chat lines, not files.
MAX_MESSAGE = 1000


def serve_page(connection: anyws.ServerConnection, request: anyws.Request) -> anyws.Response | None:
    """Answer plain HTTP requests; let WebSocket requests to /ws through."""
    if request.path == "/ws":
        return None  # the WebSocket handshake goes on
    if request.path != "/":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")
    return connection.respond(
        http.HTTPStatus.OK, PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
    )


async def relay(websocket: anyws.ServerConnection) -> None:
    """Send every message of this client to every connected client."""
    server = websocket.server
    async for message in websocket:
        if not isinstance(message, str) or len(message) > MAX_MESSAGE:
            continue  # the page sends short text messages only
        # Framed once, the same bytes queued for every client, without waiting: a
        # client that stops reading is closed (1013) rather than hold up the others.
        anyws.broadcast(server.connections, message)


def serve(host: str = "127.0.0.1", port: int = 8000) -> anyws.serve:
    return anyws.serve(relay, host, port, process_request=serve_page, max_size=4 * MAX_MESSAGE)


async def main(host: str, port: int) -> None:
    async with serve(host, port) as server:
        print(f"chat on http://{host}:{server.port}/ (Ctrl-C stops it)", flush=True)
        await server.serve_forever()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    try:
        anyio.run(main, args.host, args.port, backend=args.backend)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
