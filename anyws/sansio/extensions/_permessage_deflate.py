"""The permessage-deflate extension (RFC 7692), without I/O.

Negotiation
-----------
`ClientPerMessageDeflateFactory` offers the extension and checks the server's
answer; `ServerPerMessageDeflateFactory` answers an offer. Both handle the four
parameters of RFC 7692, section 7.1 (``server_no_context_takeover``,
``client_no_context_takeover``, ``server_max_window_bits``,
``client_max_window_bits``). A repeated parameter raises `DuplicateParameter`, an
unknown one `InvalidParameterName`, a bad value `InvalidParameterValue`; other
refusals raise a plain `NegotiationError`. On the server, any of these declines
the offer (the client's next offer, if any, is tried); on the client, the
handshake fails.

Window bits of 8. zlib cannot deflate with a 256-byte window (``wbits=-8`` is
rejected, https://github.com/madler/zlib/issues/171), so an endpoint limited to 8
bits compresses with 9, as zlib itself does for zlib-wrapped streams. That stays
within the limit: zlib never emits a match farther than the window size minus
262 bytes (``MAX_DIST``), i.e. 250 bytes with a 512-byte window, which a 256-byte
inflate window decodes (a test checks it). So 8 is accepted everywhere: in
offers, answers and configurations. (websockets declines to compress with 8
rather than mapping it to 9.) For symmetry and leniency, inflating also uses 9
bits when 8 was agreed: a larger inflate window decodes anything a smaller one does.

Compressing
-----------
A message is compressed as one DEFLATE stream across its fragments: every frame
is flushed with ``Z_SYNC_FLUSH`` and the final one loses its ``00 00 ff ff``
tail. RSV1 is set on the first frame only. With context takeover, one
compressor serves the whole connection; with ``local_no_context_takeover``, each
message gets a fresh one, dropped after its final frame so that an idle
connection holds no compressor. Control frames never pass through extensions
(`Protocol` keeps them out; `encode` and `decode` also return them unchanged).

The per-message switch. `PerMessageDeflate.skip_next_message` is a one-shot
flag: set it to ``True`` right before sending the first frame of a message and
that message goes out uncompressed (RSV1 clear; the peer decodes it as is). It
resets to ``False`` as soon as that first frame is encoded, and the decision
holds for the message's continuation frames. Since `Protocol.send_text` and
friends may raise (`InvalidState`...) before the frame reaches the extension,
reset it in a ``finally`` clause::

    deflate.skip_next_message = True
    try:
        protocol.send_binary(data)
    finally:
        deflate.skip_next_message = False

`PerMessageDeflate.min_size` (also a factory argument) sends a message smaller
than it uncompressed, when the message is a single frame; a fragmented message
is always compressed, since its size isn't known at its first frame. The default,
0, compresses every message; Node's ``ws`` uses 1024. Uncompressed messages don't
enter the compressor, so they don't disturb context takeover on either side.

Decompressing
-------------
Inflating is bounded: `PerMessageDeflate.decode` asks zlib for at most
``max_size + 1`` bytes (``max_size`` is what the message may still grow by), so
a frame that would inflate beyond the limit raises `PayloadTooBig` (1009) after
producing ``max_size + 1`` bytes at most, whatever its ratio. Corrupt data raises
`ProtocolError` (1002), and so does RSV1 on a continuation frame. A peer may end
a message with a final (BFINAL) block instead of a sync flush (RFC 7692, section
7.2.3.4); the stream is then over, and the next message starts a new one with an
empty window, even with context takeover.

Memory per connection
---------------------
Measured with tracemalloc (CPython 3.11, zlib 1.2.13) after a 80 kB message in
each direction: the compressor and the decompressor that a connection keeps
between messages with context takeover. The client and the server use the same
amount, since each holds one of each with the same settings:

==============================================================  ==================
configuration                                                   per endpoint
==============================================================  ==================
defaults of ``enable_*_permessage_deflate`` on both sides:      49 KiB
12-bit windows both ways, ``memLevel=5``                        (38 + 11)
default client, server without limits: 15 bits, ``memLevel=5``  189 KiB
zlib's defaults: 15 bits, ``memLevel=8``                        301 KiB
``*_no_context_takeover`` on both sides                         0 KiB when idle
==============================================================  ==================

(With no context takeover, the compressor and decompressor exist only while a
message is being sent or received.)
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from ...exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from .._frames import Frame, Opcode
from ._base import ClientExtensionFactory, Extension, ExtensionParameter, ServerExtensionFactory


__all__ = [
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

_NAME = "permessage-deflate"

#: What a sync flush ends with; stripped when sending, appended when receiving.
_TAIL = b"\x00\x00\xff\xff"

#: The only spellings of window bits that RFC 7692 allows: 8 to 15, without leading zeros.
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

_CONT, _TEXT, _BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY


def _zlib_bits(bits: int) -> int:
    """The raw-deflate ``wbits`` for a negotiated window size: 8 runs as 9 (see above)."""
    return -9 if bits == 8 else -bits


def _check_window_bits(name: str, value: object, *, allow_true: bool = False) -> None:
    if value is None or (allow_true and value is True):
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 15:
        raise ValueError(f"{name} must be between 8 and 15")


def _check_compress_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate settings for `zlib.compressobj`; return a copy."""
    result = dict(settings or {})
    if "wbits" in result:
        raise ValueError("compress_settings must not include wbits; set *_max_window_bits instead")
    if "zdict" in result:
        raise ValueError("compress_settings must not include zdict: the peer wouldn't know it")
    try:
        zlib.compressobj(**result)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid compress_settings: {exc}") from None
    return result


class PerMessageDeflate(Extension):
    """The permessage-deflate extension, as negotiated for one connection.

    Usually built by a factory during the handshake; build it directly to pass
    ``Protocol(side, extensions=[...])`` when the handshake happened elsewhere.

    Args:
        remote_no_context_takeover: The peer starts each message with an empty
            window, so the decompressor can be dropped between messages.
        local_no_context_takeover: Start each message sent with an empty window.
        remote_max_window_bits: The peer's window size, in bits (8 to 15).
        local_max_window_bits: The window size for compressing, in bits (8 to 15).
        compress_settings: Keyword arguments for `zlib.compressobj` (``level``,
            ``memLevel``, ``strategy``), without ``wbits`` or ``zdict``.
        min_size: Messages sent in a single frame shorter than this many bytes go
            uncompressed; 0 compresses every message.

    Attributes:
        skip_next_message: Set to ``True`` to send the next message uncompressed;
            reset when its first frame is encoded (see the module documentation).
    """

    name = _NAME

    def __init__(
        self,
        remote_no_context_takeover: bool = False,
        local_no_context_takeover: bool = False,
        remote_max_window_bits: int = 15,
        local_max_window_bits: int = 15,
        compress_settings: Mapping[str, Any] | None = None,
        *,
        min_size: int = 0,
    ) -> None:
        _check_window_bits("remote_max_window_bits", remote_max_window_bits)
        _check_window_bits("local_max_window_bits", local_max_window_bits)
        if compress_settings is not None and not compress_settings.keys().isdisjoint(
            ("wbits", "zdict")
        ):
            raise ValueError("compress_settings must not include wbits or zdict")
        if min_size < 0:
            raise ValueError("min_size must be non-negative")
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_settings: dict[str, Any] = dict(compress_settings or {})
        self.min_size = min_size
        self.skip_next_message = False
        # Created on first use, dropped after each message without context takeover.
        self._encoder: zlib._Compress | None = None
        self._decoder: zlib._Decompress | None = None
        # Whether the message being sent (received) is compressed.
        self._encoding = False
        self._decoding = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"compress_settings={self.compress_settings!r}, min_size={self.min_size})"
        )

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Inflate a frame of a compressed message; pass other frames through.

        Raises:
            ProtocolError: RSV1 is set on a continuation frame, or the data is corrupt.
            PayloadTooBig: The frame inflates to more than ``max_size`` bytes; the
                exception's ``max_size`` is that remaining allowance.
        """
        opcode = frame.opcode
        if opcode is _CONT:
            if frame.rsv1:
                raise ProtocolError("RSV1 set on a continuation frame")
            if not self._decoding:
                return frame
        elif opcode is _TEXT or opcode is _BINARY:
            if not frame.rsv1:
                return frame
            self._decoding = True
        else:
            return frame

        fin = frame.fin
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = zlib.decompressobj(
                wbits=_zlib_bits(self.remote_max_window_bits)
            )
        try:
            data = _inflate(decoder, frame.data, fin, max_size)
        except zlib.error as exc:
            raise ProtocolError(f"decompression failed: {exc}") from None
        if decoder.eof and decoder.unused_data not in (b"", _TAIL if fin else b""):
            raise ProtocolError("data after the end of the compressed stream")
        if fin:
            self._decoding = False
            if self.remote_no_context_takeover or decoder.eof:
                self._decoder = None
        return Frame(opcode, data, fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        """Deflate a frame of a message to compress; pass other frames through."""
        opcode = frame.opcode
        if opcode is _CONT:
            if not self._encoding:
                return frame
        elif opcode is _TEXT or opcode is _BINARY:
            skip = self.skip_next_message or (frame.fin and len(frame.data) < self.min_size)
            self.skip_next_message = False
            self._encoding = not skip
            if skip:
                return frame
        else:
            return frame

        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = zlib.compressobj(
                wbits=_zlib_bits(self.local_max_window_bits), **self.compress_settings
            )
        fin = frame.fin
        if fin and opcode is not _CONT and len(frame.data) >= _PROBE_SIZE:
            # Deflating data that doesn't shrink (media, encrypted or already
            # compressed payloads) costs ~37 ms per MiB for nothing. Deflate the first
            # 64 KiB on a copy of the compressor: if that doesn't save 3%, send the
            # message uncompressed, which RFC 7692 allows per message, and which
            # leaves both sides' compression contexts untouched.
            view = memoryview(frame.data)
            probe_encoder = encoder.copy()
            probe = probe_encoder.compress(view[:_PROBE_SIZE])
            probe += probe_encoder.flush(zlib.Z_SYNC_FLUSH)
            if len(probe) > _PROBE_SIZE * _PROBE_RATIO:
                self._encoding = False
                return frame
            self._encoder = encoder = probe_encoder
            data = probe + encoder.compress(view[_PROBE_SIZE:]) + encoder.flush(zlib.Z_SYNC_FLUSH)
        else:
            data = encoder.compress(frame.data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            # A sync flush ends with the tail, unless it had nothing to flush (zlib
            # skips a flush right after another); the stream is then byte-aligned, and
            # a lone stored-block header, which the peer completes with the tail it
            # appends, ends the message (RFC 7692, section 7.2.3.6).
            data = data[:-4] if data else b"\x00"
            self._encoding = False
            if self.local_no_context_takeover:
                self._encoder = None
        return Frame(opcode, data, fin, opcode is not _CONT, frame.rsv2, frame.rsv3)


#: Single-frame messages at least this large are probed before being compressed.
_PROBE_SIZE = 65536
#: A probe that deflates to more than this fraction of its size: don't compress.
_PROBE_RATIO = 0.97


def _inflate(decoder: zlib._Decompress, data: bytes, fin: bool, max_size: int | None) -> bytes:
    """Inflate ``data``, plus the tail on a final frame, producing at most ``max_size`` bytes."""
    if max_size is None:
        result = decoder.decompress(data)
        if fin:
            rest = decoder.decompress(_TAIL)
            if rest:
                result += rest
        return result
    limit = max(max_size, 0)
    # One byte more than allowed tells "too big" from "exactly the limit". Never 0,
    # which would mean "no limit" to zlib.
    result = decoder.decompress(data, limit + 1)
    if len(result) > limit:
        raise PayloadTooBig(None, limit)
    if fin:
        rest = decoder.decompress(_TAIL, limit + 1 - len(result))
        if rest:
            result += rest
            if len(result) > limit:
                raise PayloadTooBig(None, limit)
    return result


# Negotiation.


class _Params(NamedTuple):
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    #: ``True`` stands for the parameter without a value, allowed in offers only.
    client_max_window_bits: int | Literal[True] | None = None


def _parse_params(params: Sequence[ExtensionParameter], *, offer: bool) -> _Params:
    """Parse the parameters of an offer (``offer=True``) or of a response.

    Raises:
        DuplicateParameter: A parameter appears twice.
        InvalidParameterName: A parameter is unknown.
        InvalidParameterValue: A parameter's value is missing, unexpected or out of range.
    """
    seen: set[str] = set()
    server_nct = client_nct = False
    server_bits: int | None = None
    client_bits: int | Literal[True] | None = None
    for name, value in params:
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name == "server_no_context_takeover" or name == "client_no_context_takeover":
            if value is not None:
                raise InvalidParameterValue(name, value)
            if name == "server_no_context_takeover":
                server_nct = True
            else:
                client_nct = True
        elif name == "server_max_window_bits":
            if value not in _WINDOW_BITS:
                raise InvalidParameterValue(name, value)
            server_bits = _WINDOW_BITS[value]
        elif name == "client_max_window_bits":
            if value is None and offer:
                client_bits = True
            elif value in _WINDOW_BITS:
                client_bits = _WINDOW_BITS[value]
            else:
                raise InvalidParameterValue(name, value)
        else:
            raise InvalidParameterName(name)
    return _Params(server_nct, client_nct, server_bits, client_bits)


def _build_params(params: _Params) -> list[ExtensionParameter]:
    result: list[ExtensionParameter] = []
    if params.server_no_context_takeover:
        result.append(("server_no_context_takeover", None))
    if params.client_no_context_takeover:
        result.append(("client_no_context_takeover", None))
    if params.server_max_window_bits is not None:
        result.append(("server_max_window_bits", str(params.server_max_window_bits)))
    if params.client_max_window_bits is True:
        result.append(("client_max_window_bits", None))
    elif params.client_max_window_bits is not None:
        result.append(("client_max_window_bits", str(params.client_max_window_bits)))
    return result


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Offers permessage-deflate in a client's handshake (RFC 7692, section 7.1).

    Args:
        server_no_context_takeover: Ask the server to start each message with an
            empty window (the server must agree).
        client_no_context_takeover: Start each message sent with an empty window,
            and tell the server so.
        server_max_window_bits: Ask the server to compress with at most this
            window, 8 to 15 bits (the server must agree); ``None`` doesn't ask.
        client_max_window_bits: ``True`` (the default) lets the server limit the
            client's window; an integer (8 to 15) also limits it from the start;
            ``None`` doesn't offer the parameter, so the client uses 15 bits.
        compress_settings: Keyword arguments for `zlib.compressobj`, without
            ``wbits`` (set by the window bits) or ``zdict``.
        min_size: See `PerMessageDeflate`.

    Raises:
        ValueError: A setting is out of range.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | Literal[True] | None = True,
        compress_settings: Mapping[str, Any] | None = None,
        *,
        min_size: int = 0,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits)
        _check_window_bits("client_max_window_bits", client_max_window_bits, allow_true=True)
        if min_size < 0:
            raise ValueError("min_size must be non-negative")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"compress_settings={self.compress_settings!r}, min_size={self.min_size})"
        )

    def get_request_params(self) -> list[ExtensionParameter]:
        """The offer: the parameters configured, in RFC 7692's order."""
        return _build_params(
            _Params(
                self.server_no_context_takeover,
                self.client_no_context_takeover,
                self.server_max_window_bits,
                self.client_max_window_bits,
            )
        )

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> PerMessageDeflate:
        """Check the server's answer against the offer and build the extension.

        Raises:
            NegotiationError: The answer is malformed (see the subclasses) or
                doesn't honour the offer.
        """
        if any(extension.name == _NAME for extension in accepted_extensions):
            raise NegotiationError(f"{_NAME} was accepted twice")
        response = _parse_params(params, offer=False)

        # 7.1.1.1: the server must confirm server_no_context_takeover when offered,
        # and may set it anyway.
        if self.server_no_context_takeover and not response.server_no_context_takeover:
            raise NegotiationError("expected server_no_context_takeover")
        # 7.1.1.2: the server may set client_no_context_takeover; an offer of it
        # binds the client even without an answer.
        client_nct = self.client_no_context_takeover or response.client_no_context_takeover

        # 7.1.2.1: the server must answer server_max_window_bits=N with M <= N; it
        # may set it when it wasn't offered.
        server_bits = response.server_max_window_bits
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError("expected server_max_window_bits")
            if server_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"server_max_window_bits={server_bits} exceeds the offer "
                    f"of {self.server_max_window_bits}"
                )

        # 7.1.2.2: the server may answer client_max_window_bits only when offered, with
        # M <= N when the offer had a value N; without an answer, N holds.
        # A response value is always an integer: _parse_params(offer=False) ensures it.
        client_bits = response.client_max_window_bits
        assert client_bits is not True
        offered = self.client_max_window_bits
        if offered is None:
            if client_bits is not None:
                raise NegotiationError("unexpected client_max_window_bits")
        elif offered is not True:
            if client_bits is None:
                client_bits = offered
            elif client_bits > offered:
                raise NegotiationError(
                    f"client_max_window_bits={client_bits} exceeds the offer of {offered}"
                )

        return PerMessageDeflate(
            remote_no_context_takeover=response.server_no_context_takeover,
            local_no_context_takeover=client_nct,
            remote_max_window_bits=server_bits or 15,
            local_max_window_bits=client_bits or 15,
            compress_settings=self.compress_settings,
            min_size=self.min_size,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Accepts permessage-deflate offers in a server's handshake (RFC 7692, section 7.1).

    Args:
        server_no_context_takeover: Start each message sent with an empty window
            (answered whether the client asked or not).
        client_no_context_takeover: Require the client to start each message with
            an empty window, which lets the server drop its decompressor between
            messages.
        server_max_window_bits: Compress with at most this window, 8 to 15 bits;
            a client's smaller request wins.
        client_max_window_bits: Limit the client's window to this, 8 to 15 bits,
            when the client supports it (it offered ``client_max_window_bits``).
        compress_settings: Keyword arguments for `zlib.compressobj`, without
            ``wbits`` (set by the window bits) or ``zdict``.
        require_client_max_window_bits: Decline offers without
            ``client_max_window_bits``, instead of accepting a 15-bit client
            window. Requires ``client_max_window_bits``.
        min_size: See `PerMessageDeflate`.

    Raises:
        ValueError: A setting is out of range.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
        compress_settings: Mapping[str, Any] | None = None,
        require_client_max_window_bits: bool = False,
        *,
        min_size: int = 0,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits)
        _check_window_bits("client_max_window_bits", client_max_window_bits)
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        if min_size < 0:
            raise ValueError("min_size must be non-negative")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.require_client_max_window_bits = require_client_max_window_bits
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"compress_settings={self.compress_settings!r}, "
            f"require_client_max_window_bits={self.require_client_max_window_bits}, "
            f"min_size={self.min_size})"
        )

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Answer an offer: return the response parameters and the extension.

        Raises:
            NegotiationError: The offer is declined: malformed (see the
                subclasses), or without ``client_max_window_bits`` when required.
        """
        if any(extension.name == _NAME for extension in accepted_extensions):
            raise NegotiationError(f"{_NAME} was already accepted")
        offer = _parse_params(params, offer=True)

        # 7.1.1.1: confirm the client's request; or impose it.
        server_nct = offer.server_no_context_takeover or self.server_no_context_takeover
        # 7.1.1.2: impose it; or echo the client's hint, which frees the decompressor
        # between messages.
        client_nct = offer.client_no_context_takeover or self.client_no_context_takeover

        # 7.1.2.1: answer with at most the client's value; may set one unasked.
        server_bits = offer.server_max_window_bits
        if self.server_max_window_bits is not None and (
            server_bits is None or server_bits > self.server_max_window_bits
        ):
            server_bits = self.server_max_window_bits

        # 7.1.2.2: only when offered; at most the offered value; echo it when we
        # don't limit it ourselves, so that the decompressor uses no larger window.
        client_bits = offer.client_max_window_bits
        if client_bits is None:
            if self.require_client_max_window_bits:
                raise NegotiationError("client_max_window_bits required")
        elif self.client_max_window_bits is not None:
            if client_bits is True or client_bits > self.client_max_window_bits:
                client_bits = self.client_max_window_bits
        elif client_bits is True:
            client_bits = None

        response = _Params(server_nct, client_nct, server_bits, client_bits)
        assert client_bits is not True
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=client_bits or 15,
            local_max_window_bits=server_bits or 15,
            compress_settings=self.compress_settings,
            min_size=self.min_size,
        )
        return _build_params(response), extension


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None,
) -> list[ClientExtensionFactory]:
    """Return ``extensions`` plus a default client factory, unless one is there.

    The default offers ``client_max_window_bits`` (so a server may shrink the
    client's window) and compresses with ``memLevel=5``: about 4 times less memory
    than zlib's default for a slightly lower ratio. An existing permessage-deflate
    factory is kept with its settings.
    """
    result = list(extensions or ())
    if not any(factory.name == _NAME for factory in result):
        result.append(ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5}))
    return result


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None,
) -> list[ServerExtensionFactory]:
    """Return ``extensions`` plus a default server factory, unless one is there.

    The default limits both windows to 12 bits (4 KiB) when the client allows it
    and compresses with ``memLevel=5``, trading a little ratio for memory: servers
    hold many connections. An existing permessage-deflate factory is kept with its
    settings.
    """
    result = list(extensions or ())
    if not any(factory.name == _NAME for factory in result):
        result.append(
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        )
    return result
