"""The code of docs/howto/server-deployment.md: listeners, reuse_port, log filters."""

from __future__ import annotations

import logging

import anyws


async def handler(connection: anyws.ServerConnection) -> None:
    await connection.send(f"hello from {connection.local_address[0]}")


async def two_addresses(port: int = 8765) -> list[tuple[str, int]]:
    # [listeners]
    async with anyws.serve(handler, ["127.0.0.1", "::1"], port) as server:
        print(server.sockets)  # [('127.0.0.1', 8765), ('::1', 8765)]
        # [/listeners]
        return [(host, port) for host, port, *_ in server.sockets]


async def main(port: int = 8765) -> None:
    """One of several processes that serve the same port."""
    # [reuse-port]
    async with anyws.serve(handler, "0.0.0.0", port, reuse_port=True) as server:
        await server.serve_forever()
    # [/reuse-port]


# [filter]
class NoHealthChecks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "for /healthz from" not in record.getMessage()
        # [/filter]


def quiet_health_checks() -> None:
    # [add-filter]
    logging.getLogger("anyws.server").addFilter(NoHealthChecks())
    # [/add-filter]
