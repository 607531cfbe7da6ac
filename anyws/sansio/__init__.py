"""The sans-I/O WebSocket protocol core: bytes in, events and bytes out.

It imports only the standard library, does no I/O, reads no clock and starts no
task. The anyio layer of anyws is built on it; other integrations can be too.
"""

from __future__ import annotations

from ._client import ClientProtocol as ClientProtocol
from ._frames import Close as Close, CloseCode as CloseCode, Frame as Frame, Opcode as Opcode
from ._headers import Headers as Headers, MultipleValuesError as MultipleValuesError
from ._http11 import Request as Request, Response as Response
from ._protocol import (
    SEND_EOF as SEND_EOF,
    Event as Event,
    Protocol as Protocol,
    Side as Side,
    State as State,
)
from ._server import ServerProtocol as ServerProtocol
from ._uri import WebSocketURI as WebSocketURI, parse_uri as parse_uri


__all__ = [
    "SEND_EOF",
    "ClientProtocol",
    "Close",
    "CloseCode",
    "Event",
    "Frame",
    "Headers",
    "MultipleValuesError",
    "Opcode",
    "Protocol",
    "Request",
    "Response",
    "ServerProtocol",
    "Side",
    "State",
    "WebSocketURI",
    "parse_uri",
]
