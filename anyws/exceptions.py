"""Exceptions raised by anyws.

The tree follows websockets' names so that its users recognise every exception::

    WebSocketException
    ├── ConnectionClosed
    │   ├── ConnectionClosedOK
    │   └── ConnectionClosedError
    ├── InvalidURI
    ├── InvalidProxy
    ├── InvalidHandshake
    │   ├── SecurityError
    │   ├── ProxyError
    │   │   ├── InvalidProxyMessage
    │   │   └── InvalidProxyStatus
    │   ├── InvalidMessage
    │   ├── InvalidStatus
    │   ├── InvalidHeader
    │   │   ├── InvalidHeaderFormat
    │   │   ├── InvalidHeaderValue
    │   │   ├── InvalidOrigin
    │   │   └── InvalidUpgrade
    │   └── NegotiationError
    │       ├── DuplicateParameter
    │       ├── InvalidParameterName
    │       └── InvalidParameterValue
    ├── ProtocolError
    │   └── PayloadTooBig
    ├── InvalidState
    └── ConcurrencyError

Everything in this module is pure Python and shared by the sans-I/O core
(:mod:`anyws.sansio`) and the anyio layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .sansio._frames import Close
    from .sansio._http11 import Response


__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SecurityError",
    "WebSocketException",
]


class WebSocketException(Exception):
    """Base class for every exception that anyws raises."""


class ConnectionClosed(WebSocketException):
    """Raised when trying to interact with a closed connection.

    Attributes:
        rcvd: The close frame received from the peer, or ``None`` if none was.
        sent: The close frame sent to the peer, or ``None`` if none was.
        rcvd_then_sent: ``True`` if the close frame was received before one was
            sent, ``False`` for the opposite order, ``None`` unless both exist.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        assert (self.rcvd_then_sent is None) == (self.rcvd is None or self.sent is None)
        super().__init__(rcvd, sent, rcvd_then_sent)

    def __str__(self) -> str:
        if self.rcvd is None:
            if self.sent is None:
                return "no close frame received or sent"
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed properly: both sides sent 1000, 1001 or no code."""


class ConnectionClosedError(ConnectionClosed):
    """The connection was closed with an error, or without a closing handshake."""


class InvalidURI(WebSocketException):
    """A URI is not a valid ``ws://`` or ``wss://`` URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg
        super().__init__(uri, msg)

    def __str__(self) -> str:
        return f"{self.uri} isn't a valid URI: {self.msg}"


class InvalidProxy(WebSocketException):
    """A proxy URL is not a valid ``http://``, ``https://`` or ``socks*://`` proxy."""

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(proxy, msg)

    def __str__(self) -> str:
        return f"{self.proxy} isn't a valid proxy: {self.msg}"


class InvalidHandshake(WebSocketException):
    """The opening handshake failed."""


class SecurityError(InvalidHandshake):
    """An HTTP message exceeded a security limit (line length, header count, body size)."""


class ProxyError(InvalidHandshake):
    """Connecting through a proxy failed (for a SOCKS proxy, the cause says why)."""


class InvalidProxyMessage(ProxyError):
    """An HTTP proxy answered ``CONNECT`` with a malformed response, or none."""


class InvalidProxyStatus(ProxyError):
    """An HTTP proxy refused to open the tunnel: it answered ``CONNECT`` with a non-2xx status.

    Attributes:
        response: The proxy's HTTP response, without its body.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(response)

    def __str__(self) -> str:
        return f"proxy rejected connection: HTTP {self.response.status_code:d}"


class InvalidMessage(InvalidHandshake):
    """The peer sent a malformed HTTP message, or closed the connection during the handshake."""


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade request with a status other than 101.

    Attributes:
        response: The HTTP response, body included.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(response)

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {self.response.status_code:d}"


class InvalidHeader(InvalidHandshake):
    """An HTTP header is missing, empty or invalid."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)

    def __str__(self) -> str:
        if self.value is None:
            return f"missing {self.name} header"
        if self.value == "":
            return f"empty {self.name} header"
        return f"invalid {self.name} header: {self.value}"


class InvalidHeaderFormat(InvalidHeader):
    """A header value could not be parsed."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """A header has a value that is syntactically valid but not acceptable."""


class InvalidOrigin(InvalidHeader):
    """The ``Origin`` header of a request is not allowed."""

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """The ``Upgrade`` or ``Connection`` header is not a WebSocket upgrade."""


class NegotiationError(InvalidHandshake):
    """Negotiating an extension or a subprotocol failed."""


class DuplicateParameter(NegotiationError):
    """An extension parameter appears more than once."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"duplicate parameter: {self.name}"


class InvalidParameterName(NegotiationError):
    """An extension parameter has an unknown name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"invalid parameter name: {self.name}"


class InvalidParameterValue(NegotiationError):
    """An extension parameter has an invalid value."""

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)

    def __str__(self) -> str:
        if self.value is None:
            return f"missing value for parameter {self.name}"
        if self.value == "":
            return f"empty value for parameter {self.name}"
        return f"invalid value for parameter {self.name}: {self.value}"


class ProtocolError(WebSocketException):
    """The peer violated RFC 6455, or a call violated the protocol locally."""


class PayloadTooBig(ProtocolError):
    """A message exceeds ``max_size``."""

    def __init__(self, size: int | None, max_size: int) -> None:
        self.size = size
        self.max_size = max_size
        super().__init__(size, max_size)

    def __str__(self) -> str:
        if self.size is None:
            return f"message exceeds limit of {self.max_size} bytes"
        return f"message of {self.size} bytes exceeds limit of {self.max_size} bytes"


class InvalidState(WebSocketException, AssertionError):
    """An operation is not allowed in the connection's current state.

    This is a local programming error, never the peer's fault.
    """


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two tasks tried to read, or to stream a message, at the same time."""
