"""The code of docs/howto/metrics.md: a server's counters, exported to Prometheus.

    python examples/howto/metrics.py [--port 8765] [--backend trio]

serves an echo WebSocket on ``/`` and the metrics on ``/metrics``, from the same port.
"""

from __future__ import annotations

import argparse
import http
from collections.abc import Iterator

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

import anyws


# [collector]
class ServerCollector(Collector):
    """Reads `Server.stats()` whenever Prometheus scrapes."""

    def __init__(self, server: anyws.Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        stats = self.server.stats()
        yield GaugeMetricFamily(
            "anyws_connections", "Open WebSocket connections.", value=stats.connections
        )
        handshakes = CounterMetricFamily(
            "anyws_handshakes",
            "Opening handshakes, by outcome and HTTP status.",
            labels=["outcome", "status"],
        )
        handshakes.add_metric(["accepted", "101"], stats.handshakes_accepted)
        for status, count in stats.handshakes_rejected.items():
            handshakes.add_metric(["rejected", str(status)], count)
        handshakes.add_metric(["failed", ""], stats.handshakes_failed)
        yield handshakes
        messages = CounterMetricFamily(
            "anyws_messages", "WebSocket messages.", labels=["direction"]
        )
        messages.add_metric(["received"], stats.messages_received)
        messages.add_metric(["sent"], stats.messages_sent)
        yield messages
        traffic = CounterMetricFamily(
            "anyws_transferred_bytes", "Bytes of WebSocket connections.", labels=["direction"]
        )
        traffic.add_metric(["received"], stats.bytes_received)
        traffic.add_metric(["sent"], stats.bytes_sent)
        yield traffic
        closes = CounterMetricFamily(
            "anyws_closes", "Connections closed, by the close code received.", labels=["code"]
        )
        for code, count in stats.close_codes.items():
            closes.add_metric([str(code)], count)
        yield closes
        # [/collector]


# [endpoint]
def metrics_endpoint(registry: CollectorRegistry, port: int = 8765) -> anyws.serve:
    """An echo server that answers GET /metrics from its own port."""

    def process_request(
        connection: anyws.ServerConnection, request: anyws.Request
    ) -> anyws.Response | None:
        if request.path != "/metrics":
            return None  # a WebSocket handshake
        # Runs in the event loop: the snapshot and the connections it reads agree.
        return connection.respond(
            http.HTTPStatus.OK,
            generate_latest(registry).decode(),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    return anyws.serve(echo, "127.0.0.1", port, process_request=process_request)


async def main(port: int) -> None:
    registry = CollectorRegistry()
    async with metrics_endpoint(registry, port) as server:
        registry.register(ServerCollector(server))
        print(f"metrics on http://127.0.0.1:{server.port}/metrics", flush=True)
        await server.serve_forever()
        # [/endpoint]


async def echo(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    anyio.run(main, args.port, backend=args.backend)
