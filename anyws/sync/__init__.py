"""A blocking API for scripts and threads, on anyio's blocking portal.

Each client connection, and each server, runs its own event loop in a daemon
thread; the objects given here block the calling thread instead of awaiting::

    def hello(uri: str) -> None:
        with anyws.sync.connect(uri) as websocket:
            websocket.send("hello")
            print(websocket.recv(timeout=10))

Messages, exceptions and close codes are those of the async API.
"""

from __future__ import annotations

from ._broadcast import broadcast as broadcast
from ._client import (
    ClientConnection as ClientConnection,
    connect as connect,
    unix_connect as unix_connect,
)
from ._connection import Connection as Connection
from ._server import (
    Server as Server,
    ServerConnection as ServerConnection,
    route as route,
    serve as serve,
    unix_serve as unix_serve,
)


__all__ = [
    "ClientConnection",
    "Connection",
    "Server",
    "ServerConnection",
    "broadcast",
    "connect",
    "route",
    "serve",
    "unix_connect",
    "unix_serve",
]
