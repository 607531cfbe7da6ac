"""A connection as an anyio object stream: `WebSocketAttribute` and `ObjectStreamFace`.

Strategy: `Connection` is an `anyio.abc.ObjectStream` of messages (`str` or
`bytes`), so that code written against anyio's streams (a relay between two
streams, `~anyio.streams.stapled.StapledObjectStream`, a function that takes any
``ObjectReceiveStream``) takes a WebSocket connection as it is. The methods keep
their WebSocket meaning, and the end of the stream follows anyio's conventions:

- `receive` is `Connection.recv`, but a normal close (`ConnectionClosedOK`) ends
  the stream with `anyio.EndOfStream`, and an abnormal one
  (`ConnectionClosedError`) raises `anyio.BrokenResourceError`, with the
  `ConnectionClosedError` as ``__cause__``;
- `send` is `Connection.send`, which raises `ConnectionClosed` as websockets does;
- `send_eof` starts the closing handshake without waiting: messages that the
  peer sends until its close frame arrives are still received;
- `aclose` is `Connection.close` with 1000.

`extra` gives the transport's typed attributes (`anyio.abc.SocketAttribute`,
`anyio.streams.tls.TLSAttribute`) and `WebSocketAttribute`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol as TypingProtocol, cast

import anyio
import anyio.abc
import anyio.lowlevel
from anyio import TypedAttributeSet, typed_attribute

from .exceptions import ConnectionClosedError, ConnectionClosedOK
from .sansio import Headers, State
from .sansio.extensions import Extension


if TYPE_CHECKING:
    from .sansio import Protocol, Request, Response


__all__ = ["ObjectStreamFace", "WebSocketAttribute"]


class _Receiver(TypingProtocol):
    """`Connection.recv`, as `ObjectStreamFace.receive` calls it."""

    async def recv(self) -> str | bytes: ...


class WebSocketAttribute(TypedAttributeSet):
    """anyws' typed attributes of a connection, read with its ``extra()`` method.

    For example ``connection.extra(WebSocketAttribute.subprotocol)``. They are
    set once the opening handshake succeeded, on both sides.
    """

    #: The subprotocol negotiated in the opening handshake, or ``None``.
    subprotocol: str | None = typed_attribute()
    #: The extensions negotiated in the opening handshake, in the order they apply.
    extensions: tuple[Extension, ...] = typed_attribute()
    #: The path and query string that the opening handshake's request asked for.
    path: str = typed_attribute()
    #: The headers of the opening handshake's request.
    request_headers: Headers = typed_attribute()
    #: The headers of the opening handshake's response.
    response_headers: Headers = typed_attribute()


class ObjectStreamFace(anyio.abc.ObjectStream[str | bytes]):
    """The anyio face of `Connection` (a mixin; it has no state of its own)."""

    # Provided by Connection.
    protocol: Protocol
    transport: anyio.abc.AnyByteStream
    request: Request | None
    response: Response | None

    if TYPE_CHECKING:

        def _start_closing(self, code: int, reason: str) -> None: ...

    async def receive(self) -> str | bytes:
        """Receive the next message: the protocol of anyio's object receive streams.

        Like `Connection.recv`, except for how the stream ends.

        Raises:
            anyio.EndOfStream: The connection closed normally (the
                `ConnectionClosedOK` of `recv`), after every message received
                before was returned.
            anyio.BrokenResourceError: The connection closed with an error or was
                lost; the `ConnectionClosedError` of `recv` is the ``__cause__``.
            ConcurrencyError: Another task is receiving.

        Cancellation loses nothing, as for `recv`.
        """
        try:
            return await cast("_Receiver", self).recv()
        except ConnectionClosedOK as exc:
            raise anyio.EndOfStream from exc
        except ConnectionClosedError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        """Start the closing handshake with 1000, and return without waiting.

        Messages still arrive until the peer's close frame does; then `receive`
        raises `anyio.EndOfStream`. Sending raises `ConnectionClosed`. Does
        nothing when the connection is closing or closed already.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._start_closing(1000, "")

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The transport's typed attributes, and `WebSocketAttribute` once open."""
        attributes: dict[Any, Callable[[], Any]] = dict(self.transport.extra_attributes)
        protocol = self.protocol
        if protocol.state is State.CONNECTING:
            return attributes
        attributes[WebSocketAttribute.subprotocol] = lambda: getattr(protocol, "subprotocol", None)
        attributes[WebSocketAttribute.extensions] = lambda: tuple(protocol.extensions)
        request, response = self.request, self.response
        if request is not None:
            attributes[WebSocketAttribute.path] = lambda: request.path
            attributes[WebSocketAttribute.request_headers] = lambda: request.headers
        if response is not None:
            attributes[WebSocketAttribute.response_headers] = lambda: response.headers
        return attributes
