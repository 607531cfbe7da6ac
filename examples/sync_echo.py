"""Echo with the sync API: a server and a client in one script, and no async code.

Run it with ``python examples/sync_echo.py``; ``--backend trio`` runs both event loops
on trio instead of asyncio.
"""

from __future__ import annotations

import argparse

from anyws.sync import ServerConnection, connect, serve


def echo(websocket: ServerConnection) -> None:
    """The handler: a plain function, run in a thread of its own per connection."""
    for message in websocket:
        websocket.send(message)


def main(backend: str = "asyncio") -> None:
    with serve(echo, "127.0.0.1", 0, backend=backend) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        with connect(uri, backend=backend) as websocket:
            websocket.send("Hello, world!")
            print(websocket.recv(timeout=10))
            try:
                websocket.recv(timeout=0.1)
            except TimeoutError as exc:
                print(f"TimeoutError: {exc}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    main(parser.parse_args().backend)
