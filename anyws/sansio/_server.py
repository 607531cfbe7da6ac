"""The server side of the protocol: the opening handshake, then frames."""

from __future__ import annotations

import functools
import http
from collections.abc import Callable, Sequence

from ..exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    WebSocketException,
)
from ._handshake import (
    SERVER,
    build_accept_response,
    build_reject_response,
    check_origin,
    negotiate_extensions,
    negotiate_subprotocol,
    process_request,
    rejection_status,
)
from ._headers import HeadersLike
from ._http11 import Request, Response, parse_request
from ._protocol import CONNECTING, OPEN, LoggerLike, Protocol, Side, State
from .extensions import Extension, ServerExtensionFactory


__all__ = ["ServerProtocol"]

#: Chooses a subprotocol among those the client offered; ``None`` for none. Called
#: with the protocol and the offers, as in websockets' sans-I/O ``ServerProtocol``.
SelectSubprotocol = Callable[["ServerProtocol", Sequence[str]], "str | None"]


class ServerProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket server.

    Usage: feed bytes until a `Request` event arrives; build a response with
    `accept` (or `reject`), send it with `send_response`; frames follow. A
    malformed request is answered with 400 automatically and sets `handshake_exc`.

    Args:
        origins: Acceptable ``Origin`` values; ``None`` in the list accepts a
            request without one. ``None`` (the default) accepts any origin.
        extensions: Extensions to accept, in order of preference.
        subprotocols: Subprotocols to accept, in order of preference; when
            given, the client must offer one of them, or gets 400 (as in
            websockets).
        select_subprotocol: Overrides the choice of subprotocol: called with this
            protocol and the client's offers (as in websockets), returns one of
            them, or ``None`` to go on without a subprotocol.
        state: `State.CONNECTING` (the default) runs the handshake.
        max_size: As for `Protocol`.
        logger: As for `Protocol`.
    """

    # Slots, as `Protocol`.
    __slots__ = (
        "_accepted_extensions",
        "_scanned",
        "available_extensions",
        "available_subprotocols",
        "origins",
        "request",
        "response",
        "select_subprotocol",
        "subprotocol",
    )

    def __init__(
        self,
        *,
        origins: Sequence[str | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        state: State = CONNECTING,
        max_size: int | None = 2**20,
        logger: LoggerLike | None = None,
    ) -> None:
        super().__init__(Side.SERVER, state=state, max_size=max_size, logger=logger)
        self.origins = origins
        self.available_extensions = list(extensions or ())
        self.available_subprotocols = list(subprotocols or ())
        self.select_subprotocol = select_subprotocol
        #: The request received, once it arrived.
        self.request: Request | None = None
        #: The response sent, once `send_response` was called.
        self.response: Response | None = None
        #: The subprotocol selected, if any.
        self.subprotocol: str | None = None
        self._accepted_extensions: list[Extension] = []
        self._scanned = 0

    def accept(
        self,
        request: Request,
        *,
        server_header: str | None = SERVER,
        additional_headers: HeadersLike | None = None,
    ) -> Response:
        """Validate the request and build the response that accepts it.

        When the request isn't acceptable, return the error response instead
        (400, 403 for a bad origin, 426 for a bad upgrade or version) and set
        `handshake_exc`. Send the result with `send_response`.
        """
        try:
            key = process_request(request)
            check_origin(request, self.origins)
            extensions_header, extensions = negotiate_extensions(request, self.available_extensions)
            select = self.select_subprotocol
            subprotocol = negotiate_subprotocol(
                request,
                self.available_subprotocols,
                None if select is None else functools.partial(select, self),
            )
        except InvalidHandshake as exc:
            # 403 for a bad origin, 426 for a bad upgrade or version, 400 otherwise.
            return self._refuse(exc, rejection_status(exc), server_header)
        self._accepted_extensions = extensions
        self.subprotocol = subprotocol
        return build_accept_response(
            key,
            subprotocol=subprotocol,
            extensions_header=extensions_header,
            server_header=server_header,
            additional_headers=additional_headers,
        )

    def _refuse(
        self, exc: InvalidHandshake, status: http.HTTPStatus, server_header: str | None
    ) -> Response:
        self.handshake_exc = exc
        if self.debug:
            self.logger.debug("! invalid handshake: %s", exc)
        return self.reject(
            status,
            f"Failed to open a WebSocket connection: {exc}.\n",
            server_header=server_header,
        )

    def reject(
        self,
        status: int | http.HTTPStatus,
        text: str,
        *,
        server_header: str | None = SERVER,
        headers: HeadersLike | None = None,
    ) -> Response:
        """Build an HTTP response refusing the connection, with ``text`` as its body."""
        return build_reject_response(status, text, headers=headers, server_header=server_header)

    def send_response(self, response: Response) -> None:
        """Queue the response; 101 opens the connection, anything else closes it.

        Raises:
            InvalidState: The connection isn't CONNECTING any more (the stream
                ended, or the connection failed), or a response was already sent.
        """
        if self.response is not None:
            raise InvalidState("response already sent")
        if self.state is not CONNECTING or self.eof_sent:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.response = response
        if self.debug:
            self.logger.debug("> HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for name, value in response.headers.items():
                self.logger.debug("> %s: %s", name, value)
            if response.body:
                self.logger.debug("> [body] (%d bytes)", len(response.body))
        output = response.serialize()
        self.bytes_sent += len(output)
        self._output.append(output)
        if response.status_code == 101 and self.handshake_exc is None:
            self.extensions = self._accepted_extensions
            self.state = OPEN
            if self._buffer:
                self._parse_frames(None)
        else:
            if self.handshake_exc is None:
                self.handshake_exc = InvalidStatus(response)
            if not self.eof_sent:
                self.send_eof()
            self._discarding = True
            self._buffer.clear()

    def _receive_handshake(self) -> None:
        if self.request is not None or self.handshake_exc is not None:
            return  # Waiting for send_response(); bytes stay buffered.
        self._parse_request(eof=False)

    def _receive_handshake_eof(self) -> None:
        if self.request is None and self.handshake_exc is None:
            self._parse_request(eof=True)

    def _parse_request(self, *, eof: bool) -> None:
        buffer = self._buffer
        try:
            parsed = parse_request(buffer, start=self._scanned, eof=eof)
        except (WebSocketException, EOFError) as exc:
            error = InvalidMessage("did not receive a valid HTTP request")
            error.__cause__ = exc
            self.handshake_exc = error
            if self.debug:
                self.logger.debug("! invalid handshake: %s: %s", error, exc)
            if not eof:
                self.send_response(
                    self.reject(
                        http.HTTPStatus.BAD_REQUEST,
                        f"Failed to open a WebSocket connection: {error}: {exc}.\n",
                    )
                )
            return
        if parsed is None:
            self._scanned = len(buffer)
            return
        request, size = parsed
        del buffer[:size]
        self.request = request
        if self.debug:
            self.logger.debug("< GET %s HTTP/1.1", request.path)
            for name, value in request.headers.items():
                self.logger.debug("< %s: %s", name, value)
        self._events.append(request)
