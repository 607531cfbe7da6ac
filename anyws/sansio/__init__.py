"""The sans-I/O WebSocket protocol core: bytes in, events and bytes out.

It imports only the standard library, does no I/O, reads no clock and starts no
task. The anyio layer of anyws is built on it; other integrations can be too.
"""

from __future__ import annotations

from ._frames import Close as Close, CloseCode as CloseCode, Frame as Frame, Opcode as Opcode
from ._protocol import (
    SEND_EOF as SEND_EOF,
    Event as Event,
    Protocol as Protocol,
    Side as Side,
    State as State,
)


__all__ = [
    "SEND_EOF",
    "Close",
    "CloseCode",
    "Event",
    "Frame",
    "Opcode",
    "Protocol",
    "Side",
    "State",
]
