"""The protocol state machine: framing, validation, control frames, closing (RFC 6455)."""

from __future__ import annotations

import logging

import pytest

from anyws.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from anyws.sansio import SEND_EOF, Close, Frame, Opcode, Protocol, Side, State
from anyws.sansio._frames import serialize_frame

from .helpers import (
    MASK,
    client,
    close_frame_sent,
    feed,
    raw_frame,
    sent_frames,
    server,
    split_every,
)


TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


@pytest.fixture(params=[Side.SERVER, Side.CLIENT], ids=["server", "client"])
def side(request: pytest.FixtureRequest) -> Side:
    return request.param  # type: ignore[no-any-return]


def local(side: Side, **kwargs: object) -> Protocol:
    return Protocol(side, **kwargs)  # type: ignore[arg-type]


def from_peer(side: Side, opcode: int, data: bytes = b"", **kwargs: object) -> bytes:
    """A frame as the peer of ``side`` sends it: masked towards a server."""
    return raw_frame(opcode, data, masked=side is Side.SERVER, **kwargs)  # type: ignore[arg-type]


def assert_failed(protocol: Protocol, code: int, reason: str | None = None) -> None:
    """The protocol failed the connection with ``code`` on the wire."""
    sent = close_frame_sent(protocol)
    assert sent is not None, "no close frame sent"
    assert sent[0] == code
    if reason is not None:
        assert sent[1] == reason
    assert protocol.state is State.CLOSING
    assert protocol.close_expected()
    assert protocol.parser_exc is not None


# Sending -------------------------------------------------------------------


class TestSerialize:
    @pytest.mark.parametrize(
        ("length", "header"),
        [
            (0, b"\x82\x00"),
            (125, b"\x82\x7d"),
            (126, b"\x82\x7e\x00\x7e"),
            (65535, b"\x82\x7e\xff\xff"),
            (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        ],
    )
    def test_server_length_encoding(self, length: int, header: bytes) -> None:
        protocol = server()
        protocol.send_binary(b"\x01" * length)
        assert protocol.data_to_send() == [header + b"\x01" * length]

    def test_server_text_frame_bytes(self) -> None:
        protocol = server()
        protocol.send_text("Hello")
        assert protocol.data_to_send() == [b"\x81\x05Hello"]

    def test_client_masks_every_frame_with_a_fresh_key(self) -> None:
        protocol = client()
        protocol.send_text("Hello")
        protocol.send_text("Hello")
        first, second = protocol.data_to_send()
        assert first[:2] == b"\x81\x85"  # FIN + TEXT, MASK bit + length 5
        assert first[2:6] != second[2:6]
        key = first[2:6]
        assert bytes(b ^ key[i % 4] for i, b in enumerate(first[6:])) == b"Hello"

    def test_rfc_example_masked_hello(self) -> None:
        # RFC 6455, section 5.7: a single-frame masked text message.
        frame = serialize_frame(TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d")
        assert frame == bytes.fromhex("818537fa213d7f9f4d5158")

    def test_fragmented_message(self, side: Side) -> None:
        protocol = local(side)
        protocol.send_text("Hel", fin=False)
        protocol.send_ping(b"x")
        protocol.send_continuation(b"lo", fin=True)
        assert sent_frames(protocol) == [
            Frame(TEXT, b"Hel", fin=False),
            Frame(PING, b"x"),
            Frame(CONT, b"lo", fin=True),
        ]

    def test_continuation_without_message_raises(self, side: Side) -> None:
        protocol = local(side)
        with pytest.raises(ProtocolError, match="unexpected continuation frame"):
            protocol.send_continuation(b"", fin=True)

    def test_new_message_while_fragmented_raises(self, side: Side) -> None:
        protocol = local(side)
        protocol.send_binary(b"a", fin=False)
        with pytest.raises(ProtocolError, match="expected a continuation frame"):
            protocol.send_text("b")

    @pytest.mark.parametrize("method", ["send_ping", "send_pong"])
    def test_control_frame_too_long_raises(self, side: Side, method: str) -> None:
        protocol = local(side)
        getattr(protocol, method)(b"x" * 125)
        with pytest.raises(ProtocolError, match="control frame too long"):
            getattr(protocol, method)(b"x" * 126)

    @pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
    def test_send_close_invalid_code_raises(self, side: Side, code: int) -> None:
        protocol = local(side)
        with pytest.raises(ProtocolError, match=f"invalid status code: {code}"):
            protocol.send_close(code)
        assert protocol.state is State.OPEN

    def test_send_close_reason_too_long_raises(self, side: Side) -> None:
        protocol = local(side)
        with pytest.raises(ProtocolError, match="close reason too long"):
            protocol.send_close(1000, "x" * 124)
        protocol.send_close(1000, "x" * 123)

    def test_send_close_reason_without_code_raises(self, side: Side) -> None:
        with pytest.raises(ProtocolError):
            local(side).send_close(None, "why")

    def test_send_close_without_code(self, side: Side) -> None:
        protocol = local(side)
        protocol.send_close()
        assert sent_frames(protocol) == [Frame(CLOSE, b"")]
        assert protocol.close_sent == Close(1005, "")

    @pytest.mark.parametrize(
        "call",
        [
            lambda p: p.send_text("x"),
            lambda p: p.send_binary(b"x"),
            lambda p: p.send_ping(),
            lambda p: p.send_pong(),
            lambda p: p.send_close(),
        ],
        ids=["text", "binary", "ping", "pong", "close"],
    )
    def test_sending_after_close_raises_invalid_state(self, side: Side, call: object) -> None:
        protocol = local(side)
        protocol.send_close(1000)
        with pytest.raises(InvalidState, match="connection is closing"):
            call(protocol)  # type: ignore[operator]

    def test_send_eof_twice_raises(self, side: Side) -> None:
        protocol = local(side)
        protocol.send_eof()
        with pytest.raises(InvalidState):
            protocol.send_eof()

    def test_connecting_protocol_without_handshake(self, side: Side) -> None:
        protocol = local(side, state=State.CONNECTING)
        with pytest.raises(InvalidState, match="connection is connecting"):
            protocol.send_text("x")
        with pytest.raises(InvalidState):
            protocol.receive_data(b"GET")


# Receiving -----------------------------------------------------------------


class TestReceive:
    @pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
    def test_lengths_round_trip(self, side: Side, length: int) -> None:
        payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        protocol = local(side)
        assert feed(protocol, [from_peer(side, BINARY, payload)]) == [Frame(BINARY, payload)]

    def test_text_and_binary(self, side: Side) -> None:
        protocol = local(side)
        frames = feed(
            protocol,
            [from_peer(side, TEXT, "café".encode()), from_peer(side, BINARY, b"\x00\xff")],
        )
        assert frames == [Frame(TEXT, "café".encode()), Frame(BINARY, b"\x00\xff")]

    def test_byte_by_byte(self, side: Side) -> None:
        stream = from_peer(side, TEXT, b"hello" * 30) + from_peer(side, BINARY, b"x" * 300)
        protocol = local(side)
        frames = feed(protocol, split_every(stream, 1))
        assert frames == [Frame(TEXT, b"hello" * 30), Frame(BINARY, b"x" * 300)]

    def test_fragmented_with_control_frames_between(self, side: Side) -> None:
        protocol = local(side)
        frames = feed(
            protocol,
            [
                from_peer(side, TEXT, b"a", fin=False),
                from_peer(side, PING, b"p"),
                from_peer(side, CONT, b"b", fin=False),
                from_peer(side, PONG, b"q"),
                from_peer(side, CONT, b"c", fin=True),
            ],
        )
        assert frames == [
            Frame(TEXT, b"a", fin=False),
            Frame(PING, b"p"),
            Frame(CONT, b"b", fin=False),
            Frame(PONG, b"q"),
            Frame(CONT, b"c", fin=True),
        ]
        # The ping was answered at once, between the fragments.
        assert sent_frames(protocol) == [Frame(PONG, b"p")]

    def test_ping_is_answered_with_same_data(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, PING, b"payload")])
        assert sent_frames(protocol) == [Frame(PONG, b"payload")]

    def test_pong_is_not_answered(self, side: Side) -> None:
        protocol = local(side)
        assert feed(protocol, [from_peer(side, PONG, b"x")]) == [Frame(PONG, b"x")]
        assert protocol.data_to_send() == []

    def test_incorrect_masking(self, side: Side) -> None:
        protocol = local(side)
        # A frame masked the wrong way round for this side.
        frame = raw_frame(BINARY, b"x", masked=side is Side.CLIENT)
        assert feed(protocol, [frame]) == []
        assert_failed(protocol, 1002, "incorrect masking")

    @pytest.mark.parametrize("rsv", [1, 2, 4, 7])
    def test_reserved_bits(self, side: Side, rsv: int) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, BINARY, b"x", rsv=rsv)])
        assert_failed(protocol, 1002, "reserved bits must be 0")

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    def test_reserved_opcodes(self, side: Side, opcode: int) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, opcode, b"")])
        assert_failed(protocol, 1002, f"invalid opcode: {opcode:#x}")

    @pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
    def test_fragmented_control_frame(self, side: Side, opcode: Opcode) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, opcode, b"", fin=False)])
        assert_failed(protocol, 1002, "fragmented control frame")

    @pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
    def test_control_frame_too_long(self, side: Side, opcode: Opcode) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, opcode, b"\x03\xe8" + b"x" * 124)])
        assert_failed(protocol, 1002, "control frame too long")

    def test_control_frame_of_125_bytes_is_fine(self, side: Side) -> None:
        protocol = local(side)
        assert feed(protocol, [from_peer(side, PING, b"x" * 125)]) == [Frame(PING, b"x" * 125)]

    def test_continuation_without_message(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, CONT, b"x")])
        assert_failed(protocol, 1002, "unexpected continuation frame")

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_new_message_while_fragmented(self, side: Side, opcode: Opcode) -> None:
        protocol = local(side)
        frames = feed(
            protocol, [from_peer(side, BINARY, b"x", fin=False), from_peer(side, opcode, b"y")]
        )
        assert frames == [Frame(BINARY, b"x", fin=False)]
        assert_failed(protocol, 1002, "expected a continuation frame")

    def test_64_bit_length_with_most_significant_bit(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [b"\x82\xff\x80" + b"\x00" * 7])
        assert_failed(protocol, 1002, "invalid frame length")

    def test_frames_after_failure_are_ignored(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, 3)])
        protocol.data_to_send()
        assert feed(protocol, [from_peer(side, TEXT, b"ignored")]) == []
        assert protocol.data_to_send() == []


class TestUTF8:
    def test_invalid_single_frame(self, side: Side) -> None:
        protocol = local(side)
        assert feed(protocol, [from_peer(side, TEXT, b"\xce\xba\xe1\xbd")]) == []
        assert_failed(protocol, 1007, "invalid UTF-8")
        assert isinstance(protocol.parser_exc, UnicodeDecodeError)

    def test_invalid_at_the_fragment_where_it_appears(self, side: Side) -> None:
        # Autobahn 6.4.1: the second fragment makes the sequence invalid;
        # the connection fails there, before the third fragment arrives.
        protocol = local(side)
        frames = feed(protocol, [from_peer(side, TEXT, "κόσμε".encode(), fin=False)])
        assert frames == [Frame(TEXT, "κόσμε".encode(), fin=False)]
        feed(protocol, [from_peer(side, CONT, b"\xf4\x90\x80\x80", fin=False)])
        assert_failed(protocol, 1007)

    def test_invalid_inside_an_incomplete_frame(self, side: Side) -> None:
        # Autobahn 6.4.3: one frame sent in chunks; fail on the chunk that is invalid.
        protocol = local(side)
        frame = from_peer(side, TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"edited")
        header = 6 if side is Side.SERVER else 2
        feed(protocol, [frame[: header + 5]])
        assert protocol.data_to_send() == []
        feed(protocol, [frame[header + 5 : header + 13]])
        assert_failed(protocol, 1007)

    def test_valid_sequence_split_across_fragments(self, side: Side) -> None:
        encoded = "€uro".encode()
        protocol = local(side)
        frames = feed(
            protocol,
            [from_peer(side, TEXT, encoded[:1], fin=False), from_peer(side, CONT, encoded[1:])],
        )
        assert frames == [Frame(TEXT, encoded[:1], fin=False), Frame(CONT, encoded[1:])]
        assert protocol.data_to_send() == []

    def test_truncated_sequence_at_end_of_message(self, side: Side) -> None:
        protocol = local(side)
        feed(
            protocol,
            [from_peer(side, TEXT, b"ok", fin=False), from_peer(side, CONT, "€".encode()[:2])],
        )
        assert_failed(protocol, 1007)

    def test_valid_text_byte_by_byte(self, side: Side) -> None:
        text = "Ünïcødé ✓ 🎉" * 20
        protocol = local(side)
        frames = feed(protocol, split_every(from_peer(side, TEXT, text.encode()), 1))
        assert frames == [Frame(TEXT, text.encode())]
        assert protocol.data_to_send() == []

    def test_binary_is_not_validated(self, side: Side) -> None:
        protocol = local(side)
        assert feed(protocol, [from_peer(side, BINARY, b"\xff")]) == [Frame(BINARY, b"\xff")]


class TestMaxSize:
    def test_header_over_limit_fails_before_payload(self, side: Side) -> None:
        protocol = local(side, max_size=1000)
        frame = from_peer(side, BINARY, b"x" * 1001)
        feed(protocol, [frame[:10]])  # the header only
        assert_failed(protocol, 1009, "message of 1001 bytes exceeds limit of 1000 bytes")
        assert isinstance(protocol.parser_exc, PayloadTooBig)

    def test_huge_length_fails_at_once(self, side: Side) -> None:
        protocol = local(side)
        mask = MASK if side is Side.SERVER else b""
        second = 0xFF if side is Side.SERVER else 0x7F
        feed(protocol, [bytes([0x82, second]) + (2**62).to_bytes(8, "big") + mask])
        assert_failed(protocol, 1009)

    def test_at_limit_is_fine(self, side: Side) -> None:
        protocol = local(side, max_size=1000)
        assert feed(protocol, [from_peer(side, BINARY, b"x" * 1000)]) == [
            Frame(BINARY, b"x" * 1000)
        ]

    def test_fragments_add_up(self, side: Side) -> None:
        protocol = local(side, max_size=1000)
        frames = feed(
            protocol,
            [
                from_peer(side, TEXT, b"x" * 600, fin=False),
                from_peer(side, CONT, b"x" * 400, fin=False),
            ],
        )
        assert len(frames) == 2
        feed(protocol, [from_peer(side, CONT, b"x", fin=True)[:4]])
        assert_failed(protocol, 1009, "message of 1001 bytes exceeds limit of 1000 bytes")

    def test_limit_is_per_message(self, side: Side) -> None:
        protocol = local(side, max_size=1000)
        frames = feed(protocol, [from_peer(side, BINARY, b"x" * 1000)] * 3)
        assert len(frames) == 3

    def test_control_frames_do_not_count(self, side: Side) -> None:
        protocol = local(side, max_size=10)
        frames = feed(
            protocol,
            [
                from_peer(side, BINARY, b"x" * 10, fin=False),
                from_peer(side, PING, b"p" * 100),
                from_peer(side, CONT, b""),
            ],
        )
        assert len(frames) == 3

    def test_no_limit(self, side: Side) -> None:
        protocol = local(side, max_size=None)
        assert len(feed(protocol, [from_peer(side, BINARY, b"x" * 2**21)])) == 1


# Closing -------------------------------------------------------------------


class TestCloseFrames:
    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
    )
    def test_valid_codes_are_echoed(self, side: Side, code: int) -> None:
        protocol = local(side)
        payload = code.to_bytes(2, "big") + b"why"
        assert feed(protocol, [from_peer(side, CLOSE, payload)]) == [Frame(CLOSE, payload)]
        assert protocol.close_rcvd == Close(code, "why")
        assert close_frame_sent(protocol) == (code, "why")
        assert protocol.parser_exc is None

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000])
    def test_invalid_codes(self, side: Side, code: int) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, CLOSE, code.to_bytes(2, "big"))])
        assert_failed(protocol, 1002, f"invalid status code: {code}")
        assert protocol.close_rcvd is None

    def test_one_byte_payload(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, CLOSE, b"\x03")])
        assert_failed(protocol, 1002, "close frame too short")

    def test_reason_not_utf8(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, CLOSE, b"\x03\xe8\xff")])
        assert_failed(protocol, 1007, "invalid UTF-8")

    def test_empty_close_echoed_empty(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, CLOSE)])
        assert protocol.close_rcvd == Close(1005, "")
        assert sent_frames(protocol)[0] == Frame(CLOSE, b"")

    def test_frames_after_close_are_ignored(self, side: Side) -> None:
        # Autobahn 7.1.x: nothing after a close frame changes anything.
        protocol = local(side)
        frames = feed(
            protocol,
            [
                from_peer(side, CLOSE, b"\x03\xe8")
                + from_peer(side, TEXT, b"late")
                + from_peer(side, 3)  # would be a protocol error
            ],
        )
        assert frames == [Frame(CLOSE, b"\x03\xe8")]
        feed(protocol, [from_peer(side, PING, b"")])
        assert close_frame_sent(protocol) == (1000, "")
        assert protocol.parser_exc is None


class TestClosingHandshake:
    def test_client_initiates(self) -> None:
        c, s = client(), server()
        c.send_close(1000, "bye")
        assert c.state is State.CLOSING
        assert c.close_expected()
        feed(s, c.data_to_send())
        assert s.state is State.CLOSING
        # The server answers, then closes the TCP connection first (7.1.1).
        s_out = s.data_to_send()
        assert s_out[-1] == SEND_EOF
        feed(c, s_out)
        assert c.state is State.CLOSED
        assert c.data_to_send() == [SEND_EOF]
        s.receive_eof()
        assert s.state is State.CLOSED
        assert isinstance(c.close_exc, ConnectionClosedOK)
        assert str(c.close_exc) == "sent 1000 (OK) bye; then received 1000 (OK) bye"
        assert str(s.close_exc) == "received 1000 (OK) bye; then sent 1000 (OK) bye"
        assert isinstance(s.close_exc, ConnectionClosedOK)
        assert c.parser_exc is None
        assert s.parser_exc is None
        assert (c.close_code, c.close_reason) == (1000, "bye")

    def test_server_initiates(self) -> None:
        c, s = client(), server()
        s.send_close(1001)
        s_out = s.data_to_send()
        assert SEND_EOF not in s_out  # the server waits for the client's close frame
        feed(c, s_out)
        assert c.state is State.CLOSING
        c_out = c.data_to_send()
        assert SEND_EOF not in c_out  # the client waits for the server to close TCP
        feed(s, c_out)
        assert s.data_to_send() == [SEND_EOF]
        s.receive_eof()
        feed(c, [SEND_EOF])
        assert c.state is State.CLOSED
        assert s.state is State.CLOSED
        assert str(s.close_exc) == "sent 1001 (going away); then received 1001 (going away)"
        assert isinstance(s.close_exc, ConnectionClosedOK)

    def test_simultaneous_close(self) -> None:
        c, s = client(), server()
        c.send_close(1000)
        s.send_close(1000)
        feed(s, c.data_to_send())
        feed(c, s.data_to_send())
        assert s.close_rcvd_then_sent is False
        assert c.close_rcvd_then_sent is False

    def test_close_code_none_while_open(self, side: Side) -> None:
        protocol = local(side)
        assert protocol.close_code is None
        assert protocol.close_reason is None

    def test_error_code_gives_connection_closed_error(self) -> None:
        _c, s = client(), server()
        s.fail(1011, "keepalive ping timeout")
        assert s.data_to_send()[-1] == SEND_EOF  # a failing server closes TCP at once
        assert (
            str(s.close_exc)
            == "sent 1011 (internal error) keepalive ping timeout; no close frame received"
        )
        assert isinstance(s.close_exc, ConnectionClosedError)

    def test_fail_1006_sends_no_close_frame(self, side: Side) -> None:
        protocol = local(side)
        protocol.fail(1006)
        assert close_frame_sent(protocol) is None

    def test_fail_truncates_long_reasons(self, side: Side) -> None:
        protocol = local(side)
        protocol.fail(1011, "é" * 100)
        _code, reason = close_frame_sent(protocol)  # type: ignore[misc]
        assert reason == "é" * 61


class TestEOF:
    def test_eof_without_close_frame(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, TEXT, b"x"), SEND_EOF])
        assert protocol.state is State.CLOSED
        assert isinstance(protocol.parser_exc, EOFError)
        exc = protocol.close_exc
        assert type(exc) is ConnectionClosedError
        assert str(exc) == "no close frame received or sent"
        assert protocol.close_code == 1006
        assert protocol.data_to_send() == [SEND_EOF]

    def test_eof_inside_a_frame(self, side: Side) -> None:
        protocol = local(side)
        feed(protocol, [from_peer(side, TEXT, b"xyz")[:-1], SEND_EOF])
        assert protocol.state is State.CLOSED
        assert str(protocol.close_exc) == "no close frame received or sent"

    def test_eof_after_sending_close(self, side: Side) -> None:
        protocol = local(side)
        protocol.send_close(1000)
        protocol.receive_eof()
        assert str(protocol.close_exc) == "sent 1000 (OK); no close frame received"
        assert isinstance(protocol.close_exc, ConnectionClosedError)

    def test_receive_eof_is_idempotent(self, side: Side) -> None:
        protocol = local(side)
        protocol.receive_eof()
        protocol.receive_eof()
        assert protocol.data_to_send() == [SEND_EOF]

    def test_data_after_eof_is_ignored(self, side: Side) -> None:
        protocol = local(side)
        protocol.receive_eof()
        assert feed(protocol, [from_peer(side, TEXT, b"x")]) == []


class TestLogging:
    def test_debug_log_per_frame(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("anyws.test")
        with caplog.at_level(logging.DEBUG, logger="anyws.test"):
            protocol = Protocol(Side.SERVER, logger=logger)
            protocol.send_text("hello")
            feed(protocol, [raw_frame(BINARY, b"\x01\x02"), raw_frame(CLOSE, b"\x03\xe8")])
        assert [r.getMessage() for r in caplog.records] == [
            "= connection is OPEN",
            "> TEXT 'hello' [5 bytes]",
            "< BINARY 01 02 [2 bytes]",
            "< CLOSE 1000 (OK) [2 bytes]",
            "> CLOSE 1000 (OK) [2 bytes]",
            "= connection is CLOSING",
            "> EOF",
        ]
