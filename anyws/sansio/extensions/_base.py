"""Base classes for extensions, in the shape websockets' users know.

An `Extension` transforms frames: `decode` runs on every received data frame
(before UTF-8 validation and size accounting) and `encode` on every data frame
sent. Control frames never pass through extensions. An extension that uses an
RSV bit must clear it in `decode`; a bit still set afterwards fails the
connection with 1002. Negotiation goes through the factories during the
opening handshake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .._frames import Frame


__all__ = ["ClientExtensionFactory", "Extension", "ExtensionParameter", "ServerExtensionFactory"]

#: One extension parameter: a name and an optional value, as in ``x; name=value``.
ExtensionParameter = tuple[str, "str | None"]


class Extension:
    """A negotiated extension, one instance per connection."""

    #: The extension token, for example ``"permessage-deflate"``.
    name: str

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Transform a received data frame.

        Args:
            frame: The frame as parsed, unmasked.
            max_size: How many more bytes the current message may grow by, or
                ``None`` without a limit. An extension that expands data must stop at
                this bound and raise `~anyws.exceptions.PayloadTooBig`.

        Raises:
            ProtocolError: The frame is invalid for this extension (closes with 1002).
            PayloadTooBig: The decoded data exceeds ``max_size`` (closes with 1009).
        """
        raise NotImplementedError

    def encode(self, frame: Frame) -> Frame:
        """Transform a data frame before it is sent."""
        raise NotImplementedError


class ClientExtensionFactory:
    """Offers an extension in a client's request and accepts the server's answer."""

    name: str

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        """Return the parameters to offer in the ``Sec-WebSocket-Extensions`` header."""
        raise NotImplementedError

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        """Build the extension from the server's parameters.

        Raises:
            NegotiationError: The parameters are not acceptable.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Accepts or declines an extension offered by a client."""

    name: str

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Accept an offer: return the response parameters and the extension.

        Raises:
            NegotiationError: This offer is declined (the next offer may be tried).
        """
        raise NotImplementedError
