"""Frames, opcodes and close codes (RFC 6455, section 5 and 7.4).

`Frame` is a `NamedTuple` rather than a frozen dataclass: it is created once per
frame on the hot path, and a tuple is immutable, compares by value and builds
about four times faster than a frozen dataclass with slots. `Close` is rare and
validates in its constructor, so it is a frozen dataclass.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import NamedTuple

from ..exceptions import ProtocolError
from ._mask import apply_mask


__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "Close",
    "CloseCode",
    "Frame",
    "Opcode",
    "serialize_frame",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455, section 5.2)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})

#: Opcode by its 4-bit value, ``None`` for the reserved ones; an index is faster than Opcode(n).
OPCODE_TABLE: tuple[Opcode | None, ...] = tuple(
    Opcode(n) if n in Opcode._value2member_map_ else None for n in range(16)
)


class CloseCode(enum.IntEnum):
    """Close codes (RFC 6455, section 7.4.1, and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    CloseCode.NORMAL_CLOSURE: "OK",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNSUPPORTED_DATA: "unsupported data",
    CloseCode.NO_STATUS_RCVD: "no status received [internal]",
    CloseCode.ABNORMAL_CLOSURE: "abnormal closure [internal]",
    CloseCode.INVALID_DATA: "invalid frame payload data",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.MANDATORY_EXTENSION: "mandatory extension",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.SERVICE_RESTART: "service restart",
    CloseCode.TRY_AGAIN_LATER: "try again later",
    CloseCode.BAD_GATEWAY: "bad gateway",
    CloseCode.TLS_HANDSHAKE: "TLS handshake failure [internal]",
}

#: Codes that may appear in a close frame on the wire (section 7.4.1 and 7.4.2).
EXTERNAL_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

#: Codes for which `ConnectionClosed` is `ConnectionClosedOK` (1005: a close frame without code).
OK_CLOSE_CODES = frozenset({1000, 1001, 1005})


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may be sent or received in a close frame."""
    return code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """The payload of a close frame: a code and a reason.

    ``Close(1005, "")`` stands for a close frame without payload. Not for subclassing.
    """

    code: int
    reason: str = ""

    def __str__(self) -> str:
        if self.code in CLOSE_CODE_EXPLANATIONS:
            explanation = CLOSE_CODE_EXPLANATIONS[self.code]
        elif 3000 <= self.code < 4000:
            explanation = "registered"
        elif 4000 <= self.code < 5000:
            explanation = "private use"
        else:
            explanation = "unknown"
        result = f"{self.code} ({explanation})"
        if self.reason:
            result = f"{result} {self.reason}"
        return result

    @classmethod
    def parse(cls, data: bytes) -> Close:
        """Parse the payload of a close frame.

        Raises:
            ProtocolError: The payload is one byte long or the code is not allowed.
            UnicodeDecodeError: The reason is not valid UTF-8.
        """
        if len(data) >= 2:
            code = int.from_bytes(data[:2], "big")
            if not is_valid_close_code(code):
                raise ProtocolError(f"invalid status code: {code}")
            return cls(code, bytes(data[2:]).decode())
        if len(data) == 0:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        raise ProtocolError("close frame too short")

    def serialize(self) -> bytes:
        """Build the payload of a close frame; ``1005`` gives an empty payload."""
        if self.code == CloseCode.NO_STATUS_RCVD:
            return b""
        return self.code.to_bytes(2, "big") + self.reason.encode()


class Frame(NamedTuple):
    """A WebSocket frame, unmasked, as exchanged with the sans-I/O core.

    Not for subclassing.
    """

    opcode: Opcode
    data: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def __str__(self) -> str:
        # Same shape as websockets' debug logs: TEXT 'hello' [5 bytes].
        length = len(self.data)
        name = self.opcode.name
        if self.opcode is Opcode.TEXT or self.opcode is Opcode.CONT:
            try:
                text = bytes(self.data).decode()
            except UnicodeDecodeError:
                text = None
            if self.opcode is Opcode.CONT and text is None:
                data = _binary_repr(self.data)
            else:
                data = repr(text) if text is not None else _binary_repr(self.data)
        elif self.opcode is Opcode.CLOSE:
            try:
                data = str(Close.parse(self.data))
            except (ProtocolError, UnicodeDecodeError):
                data = _binary_repr(self.data)
        else:
            data = _binary_repr(self.data)
        if len(data) > 75:
            data = data[:48] + "..." + data[-24:]
        meta = f"{length} byte{'s' if length != 1 else ''}"
        if not self.fin:
            meta += ", continued"
        return f"{name} {data} [{meta}]"


def _binary_repr(data: bytes) -> str:
    if not data:
        return "''"
    if len(data) > 32:
        return bytes(data[:16]).hex(" ") + " ... " + bytes(data[-8:]).hex(" ")
    return bytes(data).hex(" ")


def serialize_frame(
    opcode: int,
    data: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """Build the bytes of one frame; ``mask`` is the 4-byte masking key, if any."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    head |= (0x10 if rsv3 else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    length = len(data)
    if length < 126:
        header = bytes((head, mask_bit | length))
    elif length < 65536:
        header = bytes((head, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((head, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask is not None:
        return header + mask + apply_mask(data, mask)
    return header + data
