"""The code of docs/howto/sync.md: a client without ``with``, a server, routes, Unix sockets."""

from __future__ import annotations

import argparse

from anyws.sync import (
    Server,
    ServerConnection,
    broadcast,
    connect,
    route,
    serve,
    unix_connect,
    unix_serve,
)


def client(uri: str = "ws://localhost:8765/", backend: str = "asyncio") -> str | bytes:
    # [client]
    websocket = connect(uri, backend=backend)
    try:
        websocket.send("hello")
        reply = websocket.recv(timeout=10)
    finally:
        websocket.close()  # the closing handshake, then the loop thread stops
    # [/client]
    return reply


# [server]
def handler(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main(port: int = 8765, backend: str = "asyncio") -> None:
    with serve(handler, "localhost", port, backend=backend) as server:
        print(f"listening on ws://localhost:{server.port}/", flush=True)
        server.serve_forever()
        # [/server]


# [route]
def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def room(websocket: ServerConnection, name: str) -> None:
    for message in websocket:
        if isinstance(message, str):  # text only
            # Queued on every open connection at once; a slow reader is closed (1013).
            broadcast(websocket.server.connections, f"{name}: {message}")


def routes(port: int = 8765, backend: str = "asyncio") -> Server:
    # /echo and /rooms/lobby are served; any other path gets 404 Not Found.
    return route({"/echo": echo, "/rooms/{name}": room}, "localhost", port, backend=backend)
    # [/route]


def unix(path: str = "/run/app/ws.sock", backend: str = "asyncio") -> str | bytes:
    # [unix]
    with (
        unix_serve(echo, path, backend=backend),
        unix_connect(path, "ws://localhost/echo", backend=backend) as websocket,
    ):
        websocket.send("over a Unix socket")
        reply = websocket.recv(timeout=10)
    # [/unix]
    return reply


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    main(args.port, args.backend)
