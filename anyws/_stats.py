"""A server's counters: `ServerStats`, the snapshot that `Server.stats` returns.

Strategy: each connection's protocol counts its messages and bytes (a few
integer additions per message, see `Protocol.messages_received`); the server
adds a connection's counts to its totals when the connection ends, and a
snapshot adds those of the connections still open. The server itself counts
handshakes and close codes, once per connection. Nothing is counted per frame
beyond that, nothing is locked, and nothing is kept per connection after it
ends, so the counters stay on.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .sansio import Protocol


__all__ = ["ServerCounters", "ServerStats"]


@dataclasses.dataclass(frozen=True)
class ServerStats:
    """A snapshot of a server's counters, since it started; see `Server.stats`.

    Messages and bytes are those of the WebSocket connections that the server
    accepted, the opening handshake included; bytes are counted as they go to
    and come from the transport (compressed, before TLS).
    """

    #: Open connections, whose handshake succeeded and which aren't closed yet.
    connections: int
    #: Opening handshakes answered with 101 Switching Protocols.
    handshakes_accepted: int
    #: Opening handshakes answered with another HTTP status, by status
    #: (``{426: 3, 404: 1}``): invalid requests, ``process_request`` answers,
    #: 503 during a shutdown.
    handshakes_rejected: Mapping[int, int]
    #: Opening handshakes that got no answer, because the client left, reset the
    #: connection, failed TLS, or took longer than ``open_timeout``.
    handshakes_failed: int
    #: Whole data messages received (a fragmented message counts once).
    messages_received: int
    #: Whole data messages sent, `broadcast` included.
    messages_sent: int
    #: Bytes received.
    bytes_received: int
    #: Bytes sent.
    bytes_sent: int
    #: Connections closed, by the close code they received (1006 when they
    #: received none: the connection was lost or aborted).
    close_codes: Mapping[int, int]


class ServerCounters:
    """The server's side of the counters (internal)."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "close_codes",
        "handshakes_accepted",
        "handshakes_failed",
        "handshakes_rejected",
        "messages_received",
        "messages_sent",
    )

    def __init__(self) -> None:
        self.handshakes_accepted = 0
        self.handshakes_rejected: Counter[int] = Counter()
        self.handshakes_failed = 0
        # Of the connections that ended.
        self.messages_received = 0
        self.messages_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.close_codes: Counter[int] = Counter()

    def handshake_answered(self, status: int) -> None:
        if status == 101:
            self.handshakes_accepted += 1
        else:
            self.handshakes_rejected[status] += 1

    def handshake_failed(self) -> None:
        self.handshakes_failed += 1

    def connection_ended(self, protocol: Protocol) -> None:
        self.messages_received += protocol.messages_received
        self.messages_sent += protocol.messages_sent
        self.bytes_received += protocol.bytes_received
        self.bytes_sent += protocol.bytes_sent
        code = protocol.close_code
        self.close_codes[1006 if code is None else code] += 1

    def snapshot(self, open_protocols: Iterable[Protocol]) -> ServerStats:
        messages_received = self.messages_received
        messages_sent = self.messages_sent
        bytes_received = self.bytes_received
        bytes_sent = self.bytes_sent
        connections = 0
        for protocol in open_protocols:
            connections += 1
            messages_received += protocol.messages_received
            messages_sent += protocol.messages_sent
            bytes_received += protocol.bytes_received
            bytes_sent += protocol.bytes_sent
        return ServerStats(
            connections=connections,
            handshakes_accepted=self.handshakes_accepted,
            handshakes_rejected=MappingProxyType(dict(sorted(self.handshakes_rejected.items()))),
            handshakes_failed=self.handshakes_failed,
            messages_received=messages_received,
            messages_sent=messages_sent,
            bytes_received=bytes_received,
            bytes_sent=bytes_sent,
            close_codes=MappingProxyType(dict(sorted(self.close_codes.items()))),
        )
