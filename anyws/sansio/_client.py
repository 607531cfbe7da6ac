"""The client side of the protocol: the opening handshake, then frames."""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    WebSocketException,
)
from ._handshake import USER_AGENT, build_request, generate_key, process_response
from ._headers import HeadersLike
from ._http11 import Request, Response, parse_response
from ._protocol import CONNECTING, OPEN, LoggerLike, Protocol, Side, State
from ._uri import WebSocketURI, parse_uri
from .extensions import ClientExtensionFactory


__all__ = ["ClientProtocol"]


class ClientProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket client.

    Usage: build the request with `connect`, send it with `send_request`, then
    feed bytes; a `Response` event ends the handshake. When the handshake fails,
    `handshake_exc` is set (an `InvalidHandshake`, `InvalidStatus` for a
    non-101 answer) and `close_expected` turns true.

    Args:
        uri: The WebSocket URI, parsed or not.
        origin: The ``Origin`` header to send, if any.
        extensions: Extensions to offer, in order of preference.
        subprotocols: Subprotocols to offer, in order of preference.
        state: `State.CONNECTING` (the default) runs the handshake.
        max_size: As for `Protocol`.
        logger: As for `Protocol`.
    """

    # Slots, as `Protocol`.
    __slots__ = (
        "_scanned",
        "available_extensions",
        "available_subprotocols",
        "key",
        "origin",
        "request",
        "response",
        "subprotocol",
        "uri",
    )

    def __init__(
        self,
        uri: WebSocketURI | str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        state: State = CONNECTING,
        max_size: int | None = 2**20,
        logger: LoggerLike | None = None,
    ) -> None:
        super().__init__(Side.CLIENT, state=state, max_size=max_size, logger=logger)
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.origin = origin
        self.available_extensions = list(extensions or ())
        self.available_subprotocols = list(subprotocols or ())
        #: The ``Sec-WebSocket-Key`` of the request.
        self.key = generate_key()
        #: The request sent, once `send_request` was called.
        self.request: Request | None = None
        #: The response received, once it arrived.
        self.response: Response | None = None
        #: The subprotocol the server selected, if any.
        self.subprotocol: str | None = None
        self._scanned = 0

    def connect(
        self,
        *,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
    ) -> Request:
        """Build the opening handshake request (it may be changed before sending)."""
        return build_request(
            self.uri,
            key=self.key,
            origin=self.origin,
            extensions=self.available_extensions,
            subprotocols=self.available_subprotocols,
            additional_headers=additional_headers,
            user_agent_header=user_agent_header,
        )

    def send_request(self, request: Request) -> None:
        """Queue the opening handshake request.

        Raises:
            InvalidState: A request was already sent.
        """
        if self.request is not None:
            raise InvalidState("request already sent")
        self.request = request
        if self.debug:
            self.logger.debug("> GET %s HTTP/1.1", request.path)
            for name, value in request.headers.items():
                self.logger.debug("> %s: %s", name, value)
        output = request.serialize()
        self.bytes_sent += len(output)
        self._output.append(output)

    def _receive_handshake(self) -> None:
        self._parse_response(eof=False)

    def _receive_handshake_eof(self) -> None:
        if self.handshake_exc is None and self.response is None:
            self._parse_response(eof=True)
            if self.response is None and self.handshake_exc is None:  # pragma: no cover
                self._handshake_failed(
                    InvalidMessage("did not receive a valid HTTP response"),
                    EOFError("connection closed during the opening handshake"),
                )

    def _parse_response(self, *, eof: bool) -> None:
        if self.handshake_exc is not None:
            return
        buffer = self._buffer
        try:
            parsed = parse_response(buffer, eof=eof, start=self._scanned)
        except (WebSocketException, EOFError) as exc:
            self._handshake_failed(InvalidMessage("did not receive a valid HTTP response"), exc)
            return
        if parsed is None:
            self._scanned = len(buffer)
            return
        response, size = parsed
        del buffer[:size]
        self.response = response
        if self.debug:
            self.logger.debug("< HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for name, value in response.headers.items():
                self.logger.debug("< %s: %s", name, value)
            if response.body:
                self.logger.debug("< [body] (%d bytes)", len(response.body))
        self._events.append(response)
        if response.status_code != 101:
            self._handshake_failed(InvalidStatus(response), None)
            return
        try:
            extensions, subprotocol = process_response(
                response,
                key=self.key,
                extensions=self.available_extensions,
                subprotocols=self.available_subprotocols,
            )
        except InvalidHandshake as exc:
            self._handshake_failed(exc, None)
            return
        self.extensions = extensions
        self.subprotocol = subprotocol
        self.state = OPEN

    def _handshake_failed(self, exc: Exception, cause: BaseException | None) -> None:
        if cause is not None:
            exc.__cause__ = cause
        self.handshake_exc = exc
        if self.debug:
            self.logger.debug("! invalid handshake: %s", exc)
        # The client closes the connection (RFC 6455, section 4.1: fail it).
        if not self.eof_sent:
            self.send_eof()
        self._discarding = True
        self._buffer.clear()
