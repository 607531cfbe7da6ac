"""Helpers for testing code that uses anyws, on any anyio backend.

In-memory byte streams
    `memory_stream_pair` (unbounded buffers) and `lockstep_stream_pair` (no buffer)
    make two connected `MemoryByteStream` objects, which are `anyio.abc.ByteStream`
    objects with controls to misbehave on purpose: drop, pause, trickle, delay the EOF,
    reset.

Connected anyws client and server
    `connection_pair` runs the real opening handshake over such streams and gives
    a client and a server connection, optionally running a handler on the server
    side exactly as `anyws.serve` would.

These helpers need neither pytest nor trio.
"""

from __future__ import annotations

from ._pair import connection_pair as connection_pair
from ._streams import (
    MemoryByteStream as MemoryByteStream,
    lockstep_stream_pair as lockstep_stream_pair,
    memory_stream_pair as memory_stream_pair,
)


__all__ = [
    "MemoryByteStream",
    "connection_pair",
    "lockstep_stream_pair",
    "memory_stream_pair",
]
