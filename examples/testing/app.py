"""The application under test: a greeter.

The client sends a name; the server answers ``Hello, <name>!``. An empty name is a
bug in the client, which the handler reports by raising: `anyws.serve` then closes
the connection with 1011 and logs the error.
"""

from __future__ import annotations

import anyws


async def greeter(websocket: anyws.ServerConnection) -> None:
    async for name in websocket:
        if not isinstance(name, str) or not name:
            raise ValueError(f"expected a name, got {name!r}")
        await websocket.send(f"Hello, {name}!")
