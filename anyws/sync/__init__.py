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

from ._client import ClientConnection as ClientConnection, connect as connect
from ._connection import Connection as Connection
from ._server import Server as Server, ServerConnection as ServerConnection, serve as serve


__all__ = ["ClientConnection", "Connection", "Server", "ServerConnection", "connect", "serve"]
