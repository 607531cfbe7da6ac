"""The WebSocket protocol state machine (RFC 6455, sections 5 to 7), without I/O.

Theory of operation
-------------------
A `Protocol` is fed bytes with `receive_data` and told about the end of the
stream with `receive_eof`. It parses frames from an internal buffer, checks
them, and queues two kinds of output: events (`events_received`) and bytes to
write (`data_to_send`, where an empty ``bytes`` means "half-close the
transport now"). Commands (`send_text`, `send_close`, `fail`...) queue bytes
too. The I/O layer loops: feed what it read, write what is queued, deliver
events, and close the transport when `close_expected` says so.

Peer faults never raise: they *fail the connection* (section 7.1.7). The
protocol sends a close frame with the matching code (1002 protocol error,
1007 invalid UTF-8, 1009 too big), stops processing input, keeps the cause in
`parser_exc`, and from then on ignores what arrives. Local misuse (sending in
the wrong state, a close code that may not be sent) raises at once:
`InvalidState` or `ProtocolError`.

The parser works on a ``bytearray`` with an offset rather than a generator
coroutine: a 64-byte frame costs a few index operations, and a frame is copied
out of the buffer once (unmasking writes the copy). The buffer is compacted
once per `receive_data` call. Limits are checked as soon as a frame header is
complete, so a header announcing 2**63 bytes fails before any payload arrives,
and text is validated as its bytes arrive, so invalid UTF-8 fails the
connection at the fragment (or chunk) where it appears.

Memory. What the parser holds is bounded by its inputs: a message may have at
most `max_fragments` frames (1009 "too many fragments" beyond), so the objects of
a message in progress cost at most about ``max_fragments * 150`` bytes on top of
its ``max_size``. With ``max_messages``, `receive_data` stops after that many
whole messages and leaves the rest of the bytes buffered, not inflated: many
compressed messages in one read cannot make more than ``max_messages`` messages
at once. It also stops after `CONTROL_FRAMES_PER_PARSE` control frames, so that a
read full of pings makes a bounded number of events and pongs at a time.

Strict conformance. When a protocol violation follows valid frames in the same
input, the protocol parses up to the violation, hands out the events before it,
and pauses (`paused`); the connection fails on the next `receive_data` (or
`receive_eof`). That gives the I/O layer a chance to deliver those messages and
let the application answer them before the close frame goes out, as section
7.1.7 and the Autobahn Testsuite's strict results expect.

Every state transition goes through the `state` setter, which logs it.
"""

from __future__ import annotations

import codecs
import enum
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ..exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from ._frames import (
    OK_CLOSE_CODES,
    OPCODE_TABLE,
    Close,
    CloseCode,
    Frame,
    Opcode,
    is_valid_close_code,
    serialize_frame,
)
from ._mask import apply_mask


if TYPE_CHECKING:
    from ._http11 import Request, Response
    from .extensions import Extension


__all__ = ["SEND_EOF", "Event", "Protocol", "Side", "State"]

#: Marker in `Protocol.data_to_send` output: half-close (or close) the transport.
SEND_EOF = b""

#: What `Protocol.events_received` returns: frames, plus the handshake messages.
Event: TypeAlias = "Frame | Request | Response"

LoggerLike: TypeAlias = "logging.Logger | logging.LoggerAdapter[Any]"


class Side(enum.IntEnum):
    """Which end of the connection a protocol plays."""

    SERVER = 0
    CLIENT = 1


class State(enum.IntEnum):
    """The connection's state (RFC 6455, section 4 and 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING, OPEN, CLOSING, CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED
SERVER, CLIENT = Side.SERVER, Side.CLIENT

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PING, _PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

#: Frames whose payload exceeds this are sliced through a memoryview rather than copied twice.
_MEMORYVIEW_THRESHOLD = 4096

#: `Protocol.receive_data` stops after this many control frames (and `paused` is set):
#: a read full of pings makes at most this many events and pongs at a time.
CONTROL_FRAMES_PER_PARSE = 1024

#: The smallest default of `Protocol.max_fragments` (websockets' figure).
MIN_MAX_FRAGMENTS = 4096


def default_max_fragments(max_size: int | None) -> int | None:
    """The default bound on the frames of a message: ``max(4096, max_size // 256)``.

    A message of ``max_size`` bytes may always arrive in fragments of 256 bytes, and
    the objects of the fragments (about 150 bytes each) never cost much more than
    half of ``max_size``. ``None`` (no ``max_size``) gives no bound.
    """
    if max_size is None:
        return None
    return max(MIN_MAX_FRAGMENTS, max_size // 256)


#: Masking keys are drawn from os.urandom in batches: one system call per 1024 frames
#: instead of one per frame (RFC 6455, section 5.3: keys must be unpredictable).
_MASK_POOL_SIZE = 4096

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

#: Builds a Frame without the Python-level __new__ that NamedTuple generates.
_new_frame = tuple.__new__


class _Failure(Exception):
    """Internal: a peer fault detected while parsing, with the close code it implies."""

    def __init__(self, code: int, exc: Exception) -> None:
        self.code = code
        self.exc = exc


class Protocol:
    """The sans-I/O WebSocket protocol, shared by the client and the server.

    Args:
        side: `Side.CLIENT` masks outgoing frames and rejects masked ones;
            `Side.SERVER` does the opposite.
        state: The initial state; `State.OPEN` skips the opening handshake, which
            suits tests and integrations that performed the handshake themselves.
        max_size: The largest message accepted, in bytes (after decompression),
            or ``None`` for no limit. A larger message fails the connection
            with 1009 as soon as its size is known, before it is buffered whole.
        extensions: Negotiated extensions, when the handshake happened elsewhere.
        logger: Where to log; the debug level logs a line per frame.
        max_fragments: The most frames a message may have; a message with more
            fails the connection with 1009 ("too many fragments") as soon as the
            header of the frame beyond the limit arrives. By default
            ``max(4096, max_size // 256)`` (websockets stops at 4,096); ``None``
            for no limit.
    """

    # Slots: a connection keeps one; with over 30 attributes, a __dict__ costs 1.6 KiB.
    __slots__ = (
        "_buffer",
        "_deferred",
        "_discarding",
        "_events",
        "_mask_pool",
        "_mask_pos",
        "_msg_decoder",
        "_msg_fragments",
        "_msg_opcode",
        "_msg_size",
        "_output",
        "_paused",
        "_send_msg_opcode",
        "_state",
        "_validated",
        "bytes_received",
        "bytes_sent",
        "close_rcvd",
        "close_rcvd_then_sent",
        "close_sent",
        "debug",
        "eof_rcvd",
        "eof_sent",
        "extensions",
        "handshake_exc",
        "logger",
        "max_fragments",
        "max_size",
        "messages_received",
        "messages_sent",
        "parser_exc",
        "side",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = OPEN,
        max_size: int | None = 2**20,
        extensions: Sequence[Extension] | None = None,
        logger: LoggerLike | None = None,
        max_fragments: int | Literal["default"] | None = "default",
    ) -> None:
        self.side = side
        if logger is None:
            logger = logging.getLogger(f"anyws.{side.name.lower()}")
        self.logger: LoggerLike = logger
        #: Whether debug logs are enabled; checked before formatting each frame log.
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self._state = state
        if self.debug:
            logger.debug("= connection is %s", state.name)
        self.max_size = max_size
        #: The most frames a message may have (``None``: no limit).
        self.max_fragments = (
            default_max_fragments(max_size) if max_fragments == "default" else max_fragments
        )
        #: Negotiated extensions, in the order they apply on the way out.
        self.extensions: list[Extension] = list(extensions or ())

        #: Close frame received from the peer, if any.
        self.close_rcvd: Close | None = None
        #: Close frame sent to the peer, if any.
        self.close_sent: Close | None = None
        #: Whether the close frame was received before one was sent.
        self.close_rcvd_then_sent: bool | None = None
        #: Why the connection was failed while parsing, if it was.
        self.parser_exc: Exception | None = None
        #: Why the opening handshake failed, if it did.
        self.handshake_exc: Exception | None = None
        self.eof_sent = False
        self.eof_rcvd = False

        # Counters, cheap enough to leave on (see Server.stats).
        #: Whole data messages received (a fragmented message counts once).
        self.messages_received = 0
        #: Whole data messages sent.
        self.messages_sent = 0
        #: Bytes received, the opening handshake included.
        self.bytes_received = 0
        #: Bytes sent, the opening handshake included.
        self.bytes_sent = 0

        self._buffer = bytearray()
        self._events: list[Event] = []
        self._output: list[bytes] = []
        # Set once the connection fails or a close frame arrives: input is ignored.
        self._discarding = False
        # The message being received: its opcode (TEXT or BINARY) while fragmented.
        self._msg_opcode: Opcode | None = None
        self._msg_size = 0
        self._msg_fragments = 0
        # A peer fault found after valid events of the same input: applied on the
        # next receive_data() or receive_eof(), once those events were handled.
        self._deferred: _Failure | None = None
        self._paused = False
        self._msg_decoder: codecs.IncrementalDecoder | None = None
        # Bytes of the payload of the frame at the head of the buffer that were
        # already fed to the text decoder while the frame was incomplete.
        self._validated = 0
        self._mask_pool = b""
        self._mask_pos = 0
        self._send_msg_opcode: Opcode | None = None  # of a fragmented message being sent

    # State ------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The connection's state (CONNECTING, OPEN, CLOSING or CLOSED)."""
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        if self.debug:
            self.logger.debug("= connection is %s", state.name)
        self._state = state

    @property
    def close_code(self) -> int | None:
        """The close code received, 1006 when the connection closed without one.

        ``None`` while the connection is not CLOSED.
        """
        if self._state is not CLOSED:
            return None
        if self.close_rcvd is None:
            return CloseCode.ABNORMAL_CLOSURE
        return self.close_rcvd.code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` while the connection is not CLOSED."""
        if self._state is not CLOSED:
            return None
        if self.close_rcvd is None:
            return ""
        return self.close_rcvd.reason

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception to raise when a closed connection is used.

        `ConnectionClosedOK` when both sides sent 1000, 1001 or no code;
        `ConnectionClosedError` otherwise, and always when no close frame was received.
        """
        rcvd, sent = self.close_rcvd, self.close_sent
        exc_type: type[ConnectionClosed]
        if (
            rcvd is not None
            and sent is not None
            and rcvd.code in OK_CLOSE_CODES
            and sent.code in OK_CLOSE_CODES
        ):
            exc_type = ConnectionClosedOK
        else:
            exc_type = ConnectionClosedError
        return exc_type(rcvd, sent, self.close_rcvd_then_sent)

    # Input ------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the last `receive_data` stopped parsing with input left to process.

        That happens after ``max_messages`` whole messages, after
        1,024 control frames, and before a protocol violation
        that follows valid frames. Handle the events received, then call
        `receive_data` again (``b""`` will do) to go on; until then, the bytes wait
        in the protocol's buffer as they arrived (not inflated).
        """
        # Failing the connection (fail()) stops input, pause or not.
        return self._paused and not self._discarding

    def receive_data(
        self,
        data: bytes | bytearray | memoryview,
        *,
        max_messages: int | None = None,
        defer_failure: bool = False,
    ) -> None:
        """Feed bytes read from the transport, and parse what can be parsed.

        Afterwards, call `events_received` and `data_to_send`, check
        `close_expected`, and check `paused`. Data received after the end of the
        stream, after a close frame, or after the connection failed is ignored.

        Args:
            data: The bytes; ``b""`` only resumes parsing (see `paused`).
            max_messages: Stop parsing after this many whole data messages
                (``None``: no limit). An I/O layer passes the room left in its
                queue, so that a burst of compressed messages is not inflated
                before there is room for it.
            defer_failure: Pause before a protocol violation even when nothing
                precedes it in ``data``: the caller still has messages to deliver,
                which the application may answer before the connection fails.
        """
        if self._discarding or self.eof_rcvd:
            return
        self.bytes_received += len(data)
        self._paused = False
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            self._fail_parsing(deferred.code, deferred.exc)
            return
        if data:
            self._buffer += data
        if self._state is CONNECTING:
            self._receive_handshake()
            if self._state is CONNECTING or self._discarding:
                return
        self._parse_frames(max_messages, defer_failure)

    def receive_eof(self) -> None:
        """Tell the protocol that the transport reached the end of the stream.

        Idempotent. The connection becomes CLOSED; unless the closing handshake
        completed, `close_exc` is then a `ConnectionClosedError` and `parser_exc`
        an `EOFError`.
        """
        if self.eof_rcvd:
            return
        self._paused = False
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            self._fail_parsing(deferred.code, deferred.exc)
        self.eof_rcvd = True
        if self._state is CONNECTING:
            self._receive_handshake_eof()
        elif not self._discarding and self.parser_exc is None:
            self.parser_exc = EOFError("unexpected end of stream")
        self._discarding = True
        self._buffer.clear()
        if not self.eof_sent:
            self.send_eof()
        self.state = CLOSED

    # Output -----------------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Return the events parsed since the last call, and forget them."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return the bytes to write since the last call, and forget them.

        An empty ``bytes`` item (`SEND_EOF`) means: half-close the transport now
        (or close it, when it cannot half-close); it is always the last item.
        """
        output, self._output = self._output, []
        return output

    def close_expected(self) -> bool:
        """Tell whether the transport is expected to close soon.

        Call it after any ``receive_*``, `send_close` or `fail`. When it returns
        ``True``, the I/O layer should close the transport if the peer does not
        within a short timeout (section 7.1.1: the server closes TCP first, so a
        client waits a little before closing it itself).
        """
        return (
            self._state is CLOSING
            or self.handshake_exc is not None
            or (self.eof_sent and self._state is not CLOSED)
        )

    # Commands ---------------------------------------------------------------

    def send_text(self, data: bytes | str, fin: bool = True) -> None:
        """Send a text frame; ``bytes`` must already be UTF-8.

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: A fragmented message is in progress.
        """
        if isinstance(data, str):
            data = data.encode()
        self._send_data(_TEXT, data, fin)

    def send_binary(self, data: bytes | bytearray | memoryview, fin: bool = True) -> None:
        """Send a binary frame.

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: A fragmented message is in progress.
        """
        self._send_data(_BINARY, data, fin)

    def send_continuation(self, data: bytes | bytearray | memoryview, fin: bool) -> None:
        """Send a continuation frame of the fragmented message in progress.

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: No fragmented message is in progress.
        """
        self._send_data(_CONT, data, fin)

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2).

        Args:
            code: The close code, or ``None`` for a close frame without payload
                (then ``reason`` must be empty).
            reason: A reason; its UTF-8 encoding must fit in 123 bytes.

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: The code may not be sent, or the reason is too long.
        """
        self._check_state_open()
        if code is None:
            if reason:
                raise ProtocolError("cannot send a reason without a code")
            close = Close(CloseCode.NO_STATUS_RCVD, "")
        else:
            if not is_valid_close_code(code):
                raise ProtocolError(f"invalid status code: {code}")
            close = Close(code, reason)
        payload = close.serialize()
        if len(payload) > 125:
            raise ProtocolError("close reason too long")
        self._write_frame(Frame(_CLOSE, payload))
        self.close_sent = close
        self.state = CLOSING

    def send_ping(self, data: bytes | bytearray | memoryview = b"") -> None:
        """Send a ping frame.

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: ``data`` is longer than 125 bytes.
        """
        self._send_control(_PING, data)

    def send_pong(self, data: bytes | bytearray | memoryview = b"") -> None:
        """Send a pong frame (pings are answered automatically; this sends an unsolicited one).

        Raises:
            InvalidState: The connection is not OPEN.
            ProtocolError: ``data`` is longer than 125 bytes.
        """
        self._send_control(_PONG, data)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (section 7.1.7).

        Sends a close frame with ``code`` (none for 1006) if the connection is
        OPEN, stops processing input, and, on the server, half-closes the
        transport at once. A client waits for the server to close the transport.
        Never raises: failing a connection that is already closing only stops input.
        """
        if self._state is OPEN and code != CloseCode.ABNORMAL_CLOSURE:
            close = Close(code, _truncate_reason(reason))
            self._write_frame(Frame(_CLOSE, close.serialize()))
            self.close_sent = close
            self.state = CLOSING
        if self.side is SERVER and not self.eof_sent:
            self.send_eof()
        self._discarding = True
        self._buffer.clear()

    def send_eof(self) -> None:
        """Queue `SEND_EOF`: half-close the transport after the bytes already queued."""
        if self.eof_sent:
            raise InvalidState("end of stream already sent")
        self.eof_sent = True
        if self.debug:
            self.logger.debug("> EOF")
        self._output.append(SEND_EOF)

    # Handshake hooks, for ClientProtocol and ServerProtocol ----------------

    def _receive_handshake(self) -> None:
        """Parse the opening handshake from ``self._buffer`` (CONNECTING state)."""
        raise InvalidState("no opening handshake on a protocol created OPEN")

    def _receive_handshake_eof(self) -> None:
        """Handle the end of the stream during the opening handshake."""
        raise InvalidState("no opening handshake on a protocol created OPEN")

    # Sending ----------------------------------------------------------------

    def _check_state_open(self) -> None:
        if self._state is not OPEN:
            raise InvalidState(f"connection is {self._state.name.lower()}")

    def _send_data(self, opcode: Opcode, data: bytes | bytearray | memoryview, fin: bool) -> None:
        self._check_state_open()
        # Sending uses its own fragmentation state, separate from receiving.
        sending = self._send_msg_opcode
        if opcode is _CONT:
            if sending is None:
                raise ProtocolError("unexpected continuation frame")
        elif sending is not None:
            raise ProtocolError("expected a continuation frame")
        else:
            sending = opcode
        self._send_msg_opcode = None if fin else sending
        self._write_frame(Frame(opcode, data, fin))  # type: ignore[arg-type]
        if fin:
            self.messages_sent += 1

    def _send_control(self, opcode: Opcode, data: bytes | bytearray | memoryview) -> None:
        self._check_state_open()
        if len(data) > 125:
            raise ProtocolError("control frame too long")
        self._write_frame(Frame(opcode, bytes(data)))

    def _write_frame(self, frame: Frame) -> None:
        if self.debug:
            self.logger.debug("> %s", frame)
        if self.extensions and frame.opcode < 8:
            for extension in self.extensions:
                frame = extension.encode(frame)
        opcode, data, fin, rsv1, rsv2, rsv3 = frame
        mask = self._next_mask() if self.side is CLIENT else None
        output = serialize_frame(opcode, data, fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3, mask=mask)
        self.bytes_sent += len(output)
        self._output.append(output)

    def _next_mask(self) -> bytes:
        pos = self._mask_pos
        if pos >= len(self._mask_pool):
            self._mask_pool = os.urandom(_MASK_POOL_SIZE)
            pos = 0
        self._mask_pos = pos + 4
        return self._mask_pool[pos : pos + 4]

    # Parsing ----------------------------------------------------------------

    def _parse_frames(self, max_messages: int | None, defer_failure: bool = False) -> None:
        buffer = self._buffer
        size = len(buffer)
        pos = 0
        expect_mask = self.side is SERVER
        extensions = self.extensions
        max_size = self.max_size
        max_fragments = self.max_fragments
        events = self._events
        events_before = len(events)
        messages = 0
        controls = 0
        try:
            while size - pos >= 2:
                if max_messages is not None and messages >= max_messages:
                    self._paused = True
                    break
                if controls >= CONTROL_FRAMES_PER_PARSE:
                    self._paused = True
                    break
                head = buffer[pos]
                second = buffer[pos + 1]
                length = second & 0x7F
                if length < 126:
                    header_size = 2
                elif length == 126:
                    if size - pos < 4:
                        break
                    length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                    header_size = 4
                else:
                    if size - pos < 10:
                        break
                    length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise _Failure(1002, ProtocolError("invalid frame length"))
                    header_size = 10
                opcode = OPCODE_TABLE[head & 0x0F]
                if opcode is None:
                    raise _Failure(1002, ProtocolError(f"invalid opcode: {head & 0x0F:#x}"))
                if (second & 0x80 == 0x80) is not expect_mask:
                    raise _Failure(1002, ProtocolError("incorrect masking"))
                fin = head & 0x80 == 0x80
                if head & 0x70 and (not extensions or opcode >= 8):
                    # Extensions may claim RSV bits on data frames only (RFC 7692, 6.1).
                    raise _Failure(1002, ProtocolError("reserved bits must be 0"))
                if opcode >= 8:
                    if not fin:
                        raise _Failure(1002, ProtocolError("fragmented control frame"))
                    if length > 125:
                        raise _Failure(1002, ProtocolError("control frame too long"))
                else:
                    # Fragmentation and size are checked as soon as the header is complete.
                    if opcode is _CONT:
                        if self._msg_opcode is None:
                            raise _Failure(1002, ProtocolError("unexpected continuation frame"))
                        total = self._msg_size + length
                        if max_fragments is not None and self._msg_fragments >= max_fragments:
                            raise _Failure(1009, ProtocolError("too many fragments"))
                    else:
                        if self._msg_opcode is not None:
                            raise _Failure(1002, ProtocolError("expected a continuation frame"))
                        total = length
                    if max_size is not None:
                        if not extensions:
                            if total > max_size:
                                raise _Failure(1009, PayloadTooBig(total, max_size))
                        # With extensions, the size that counts is the decoded one,
                        # checked as it is decoded; on the wire, a frame may still
                        # not be much larger than a whole message (deflate adds
                        # 5 bytes per 64 KiB to data it can't compress).
                        elif length > max_size + (max_size >> 10) + 64:
                            raise _Failure(1009, PayloadTooBig(None, max_size))
                if expect_mask:
                    header_size += 4
                start = pos + header_size
                end = start + length
                if end > size:
                    if (
                        size - start > self._validated
                        and opcode < 8
                        and (opcode is _TEXT or self._msg_opcode is _TEXT)
                        and not extensions
                    ):
                        self._validate_partial_text(buffer, start, size, expect_mask)
                    break
                if expect_mask:
                    if length > _MEMORYVIEW_THRESHOLD:
                        with memoryview(buffer) as view:
                            data = apply_mask(view[start:end], bytes(view[start - 4 : start]))
                    else:
                        data = apply_mask(buffer[start:end], buffer[start - 4 : start])
                else:
                    data = bytes(buffer[start:end])
                if opcode >= 8:
                    self._receive_control_frame(
                        _new_frame(Frame, (opcode, data, True, False, False, False))
                    )
                    pos = end
                    if self._discarding:
                        return
                    controls += 1
                    continue
                pos = end
                if fin and opcode is not _CONT and not extensions and self._msg_decoder is None:
                    # The fast path: a whole message in one frame.
                    if opcode is _TEXT:
                        try:
                            data.decode()
                        except UnicodeDecodeError as exc:
                            raise _Failure(1007, exc) from None
                    frame = _new_frame(Frame, (opcode, data, True, False, False, False))
                    if self.debug:
                        self.logger.debug("< %s", frame)
                    events.append(frame)
                    self.messages_received += 1
                else:
                    rsv = head & 0x70
                    self._receive_data_frame(
                        _new_frame(
                            Frame,
                            (opcode, data, fin, rsv & 0x40 != 0, rsv & 0x20 != 0, rsv & 0x10 != 0),
                        )
                    )
                if fin:
                    messages += 1
        except _Failure as failure:
            if defer_failure or ((messages or controls) and len(events) > events_before):
                # Whole messages or control frames precede the fault: let them
                # be handled (and answered) first.
                self._deferred = failure
                self._paused = True
                self._buffer.clear()
                return
            self._fail_parsing(failure.code, failure.exc)
            return
        if pos:
            del buffer[:pos]

    def _validate_partial_text(
        self, buffer: bytearray, start: int, size: int, masked: bool
    ) -> None:
        """Feed the text decoder with the part of an incomplete frame received so far."""
        if self._msg_decoder is None:
            self._msg_decoder = _utf8_decoder()
        validated = self._validated
        chunk: bytes | bytearray = buffer[start + validated : size]
        if masked:
            key = bytes(buffer[start - 4 : start])
            offset = validated % 4
            chunk = apply_mask(chunk, key[offset:] + key[:offset])
        self._validated = validated + len(chunk)
        try:
            self._msg_decoder.decode(chunk, False)
        except UnicodeDecodeError as exc:
            raise _Failure(1007, exc) from None

    def _receive_data_frame(self, frame: Frame) -> None:
        opcode, data, fin = frame.opcode, frame.data, frame.fin
        if self.extensions:
            frame = self._decode_extensions(frame)
            data = frame.data
        validated, self._validated = self._validated, 0
        if opcode is _CONT:
            self._msg_size += len(data)
            self._msg_fragments += 1
            if self.extensions and self.max_size is not None and self._msg_size > self.max_size:
                raise _Failure(1009, PayloadTooBig(self._msg_size, self.max_size))
            if self._msg_opcode is _TEXT:
                self._decode_text(data, validated, fin)
            if fin:
                self._msg_opcode = None
                self._msg_decoder = None
        else:
            if self.extensions and self.max_size is not None and len(data) > self.max_size:
                raise _Failure(1009, PayloadTooBig(len(data), self.max_size))
            if opcode is _TEXT:
                if fin and self._msg_decoder is None:
                    # The fast path: a whole text message in one frame.
                    try:
                        data.decode()
                    except UnicodeDecodeError as exc:
                        raise _Failure(1007, exc) from None
                else:
                    self._decode_text(data, validated, fin)
            if not fin:
                self._msg_opcode = opcode
                self._msg_size = len(data)
                self._msg_fragments = 1
            elif self._msg_decoder is not None:
                self._msg_decoder = None
        if self.debug:
            self.logger.debug("< %s", frame)
        self._events.append(frame)
        if fin:
            self.messages_received += 1

    def _decode_text(self, data: bytes, validated: int, fin: bool) -> None:
        decoder = self._msg_decoder
        if decoder is None:
            decoder = self._msg_decoder = _utf8_decoder()
        try:
            decoder.decode(data[validated:] if validated else data, fin)
        except UnicodeDecodeError as exc:
            raise _Failure(1007, exc) from None

    def _decode_extensions(self, frame: Frame) -> Frame:
        max_size = self.max_size
        if max_size is not None and frame.opcode is _CONT:
            max_size -= self._msg_size
        try:
            for extension in reversed(self.extensions):
                frame = extension.decode(frame, max_size=max_size)
        except PayloadTooBig:
            # The extension knows what was left of the limit; say what the limit is.
            assert self.max_size is not None
            raise _Failure(1009, PayloadTooBig(None, self.max_size)) from None
        except ProtocolError as exc:
            raise _Failure(1002, exc) from None
        except Exception as exc:
            # An extension bug must not crash the reader: fail with 1011, keep the cause.
            raise _Failure(1011, exc) from None
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            raise _Failure(1002, ProtocolError("reserved bits must be 0"))
        return frame

    def _receive_control_frame(self, frame: Frame) -> None:
        if self.debug:
            self.logger.debug("< %s", frame)
        opcode = frame.opcode
        if opcode is _PING:
            self._events.append(frame)
            # 5.5.2: answer with a pong carrying the same data, as soon as practical.
            if self._state is OPEN:
                self._write_frame(Frame(_PONG, frame.data))
        elif opcode is _PONG:
            self._events.append(frame)
        else:
            try:
                close = Close.parse(frame.data)
            except ProtocolError as exc:
                raise _Failure(1002, exc) from None
            except UnicodeDecodeError as exc:
                raise _Failure(1007, exc) from None
            self._events.append(frame)
            self.close_rcvd = close
            if self._state is OPEN:
                # 5.5.1: echo the close frame; the code it received, typically.
                self._write_frame(Frame(_CLOSE, frame.data))
                self.close_sent = close
                self.close_rcvd_then_sent = True
                self.state = CLOSING
            else:
                self.close_rcvd_then_sent = False
            # 7.1.1: the server closes the TCP connection first.
            if self.side is SERVER and not self.eof_sent:
                self.send_eof()
            # 1.4: after a close frame, nothing more is processed.
            self._discarding = True
            self._buffer.clear()

    def _fail_parsing(self, code: int, exc: Exception) -> None:
        self.parser_exc = exc
        if self.debug:
            self.logger.debug("! failing connection with code %d: %s", code, exc)
        reason = "" if code == CloseCode.INTERNAL_ERROR else str(exc)
        if isinstance(exc, UnicodeDecodeError):
            reason = "invalid UTF-8"
        self.fail(code, reason)


def _truncate_reason(reason: str) -> str:
    """Cut a reason so that its UTF-8 encoding fits a close frame (123 bytes)."""
    encoded = reason.encode()
    if len(encoded) <= 123:
        return reason
    return encoded[:123].decode(errors="ignore")
