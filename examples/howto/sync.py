"""The code of docs/howto/sync.md: a client without ``with``, and a server."""

from __future__ import annotations

import argparse

from anyws.sync import ServerConnection, connect, serve


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    main(args.port, args.backend)
