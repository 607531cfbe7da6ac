"""Logging: anyws' loggers, debug frame logs, and health checks that stay quiet.

anyws logs to ``anyws.server`` and ``anyws.client``. At INFO it says little: the
addresses a server listens on, and one line per HTTP answer that isn't an upgrade
(health checks, rejected requests); handler crashes and accept failures are ERRORs;
everything else (each frame, each lost connection) is DEBUG.

Run it with ``python examples/logging_setup.py [--debug] [--port 8765]``, then try
``curl -i http://127.0.0.1:8765/healthz``.
"""

from __future__ import annotations

import argparse
import http
import logging

import anyio

import anyws


def configure_logging(debug: bool = False) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Before serving or connecting: each connection checks once, as it opens,
    # whether DEBUG is on (and then formats one line per frame).
    logging.getLogger("anyws").setLevel(logging.DEBUG if debug else logging.INFO)


def health_check(
    connection: anyws.ServerConnection, request: anyws.Request
) -> anyws.Response | None:
    """Answer ``GET /healthz`` with 200 instead of 426 (not a WebSocket request)."""
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None  # everything else goes on with the WebSocket handshake


async def echo(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


def serve(port: int = 8765, health_port: int = 8081) -> tuple[anyws.serve, anyws.serve]:
    app = anyws.serve(echo, "127.0.0.1", port, process_request=health_check)
    # Health checks on a port of their own, with a logger of their own: even with
    # anyws at DEBUG, the load balancer's probes don't flood the logs.
    health_logger = logging.getLogger("myapp.health")
    health_logger.setLevel(logging.WARNING)
    health = anyws.serve(
        echo, "127.0.0.1", health_port, process_request=health_check, logger=health_logger
    )
    return app, health


async def main(port: int, health_port: int) -> None:
    app, health = serve(port, health_port)
    async with app as server, health as health_server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        print(f"health checks on http://127.0.0.1:{health_server.port}/healthz", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--health-port", type=int, default=8081)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    configure_logging(args.debug)
    anyio.run(main, args.port, args.health_port, backend=args.backend)
