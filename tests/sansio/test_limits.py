"""Memory bounds of the core against hostile input (issue 14), and strict conformance.

Each memory test measures the peak of traced memory (`tracemalloc`) while the core
parses the input, and compares it with the bound of docs/topics/memory.md.
"""

from __future__ import annotations

import zlib

import pytest

from anyws.exceptions import ProtocolError
from anyws.sansio import Close, Frame, Opcode, Protocol, Side
from anyws.sansio._protocol import (
    CONTROL_FRAMES_PER_PARSE,
    default_max_fragments,
)
from anyws.sansio.extensions import PerMessageDeflate

from .helpers import close_frame_sent, peak_memory, raw_frame


TEXT, BINARY, CONT, PING, PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING, Opcode.PONG
MiB = 2**20


def frames(protocol: Protocol) -> list[Frame]:
    return [event for event in protocol.events_received() if isinstance(event, Frame)]


def wire(side: Side, opcode: int, data: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as the peer of ``side`` sends it (masked toward a server)."""
    return raw_frame(opcode, data, fin=fin, rsv=rsv, masked=side is Side.SERVER)


# Fragments -------------------------------------------------------------------------


def test_default_max_fragments() -> None:
    assert default_max_fragments(None) is None
    assert default_max_fragments(2**10) == 4096
    assert default_max_fragments(2**20) == 4096
    assert default_max_fragments(2**25) == 2**17
    assert Protocol(Side.SERVER).max_fragments == 4096
    assert Protocol(Side.SERVER, max_size=None).max_fragments is None
    assert Protocol(Side.SERVER, max_fragments=10).max_fragments == 10


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_max_fragments_is_allowed_one_more_fails(side: Side) -> None:
    protocol = Protocol(side, max_fragments=5)
    data = wire(side, TEXT, b"a", fin=False)
    data += wire(side, CONT, b"b", fin=False) * 3 + wire(side, CONT, b"c")
    protocol.receive_data(data)
    assert b"".join(f.data for f in frames(protocol)) == b"abbbc"
    assert protocol.parser_exc is None
    data = wire(side, TEXT, b"a", fin=False) + wire(side, CONT, b"b", fin=False) * 4
    data += wire(side, CONT, b"c")
    protocol.receive_data(data)
    assert len(frames(protocol)) == 5  # the sixth fails
    assert isinstance(protocol.parser_exc, ProtocolError)
    assert str(protocol.parser_exc) == "too many fragments"
    assert close_frame_sent(protocol) == (1009, "too many fragments")


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_endless_empty_fragments(side: Side) -> None:
    """The issue's reproduction: a text frame and 1,000,000 empty continuations."""
    data = wire(side, TEXT, b"", fin=False) + wire(side, CONT, b"", fin=False) * 1_000_000
    protocol = Protocol(side)
    with peak_memory() as peak:
        protocol.receive_data(data)
        received = frames(protocol)
    assert len(received) == 4096
    assert close_frame_sent(protocol) == (1009, "too many fragments")
    # 4096 frames of ~100 bytes, and one copy of the input (the buffer).
    assert peak() < len(data) + 4096 * 150
    del received


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_one_byte_fragments_up_to_max_size(side: Side) -> None:
    """1-byte fragments of a 1 MiB message: fail at 4,096 rather than hold 150 MiB."""
    data = wire(side, BINARY, b"x", fin=False) + wire(side, CONT, b"x", fin=False) * (MiB - 1)
    protocol = Protocol(side, max_size=MiB)
    with peak_memory() as peak:
        for i in range(0, len(data), 2**18):  # reads of 256 KiB, as the I/O layer does
            protocol.receive_data(data[i : i + 2**18])
            received = frames(protocol)
    assert close_frame_sent(protocol) == (1009, "too many fragments")
    # One read, its copy in the buffer, and 4096 frames of at most 150 bytes.
    assert peak() < 2 * 2**18 + 4096 * 150
    del received


# Many messages in one read ---------------------------------------------------------


def deflated(side: Side, payload: bytes, count: int) -> bytes:
    """``count`` messages of ``payload``, compressed (no context takeover) by the peer."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return wire(side, BINARY, body[:-4], rsv=4) * count


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_many_bombs_in_one_read(side: Side) -> None:
    """200 messages of ~1 KB inflating to 1 MB each: max_messages of them at a time."""
    data = deflated(side, bytes(10**6), 200)
    assert len(data) < 250_000
    protocol = Protocol(side, max_size=MiB, extensions=[PerMessageDeflate()])
    received = 0
    with peak_memory() as peak:
        protocol.receive_data(data, max_messages=16)
        while True:
            batch = frames(protocol)
            assert len(batch) <= 16
            received += len(batch)
            del batch
            if not protocol.paused:
                break
            protocol.receive_data(b"", max_messages=16)
    assert received == 200
    assert protocol.parser_exc is None
    # 16 inflated messages, the one being inflated, and the compressed input.
    assert peak() < 17 * 10**6 + 2 * len(data)


def test_max_messages_counts_whole_messages() -> None:
    protocol = Protocol(Side.SERVER)
    data = wire(Side.SERVER, TEXT, b"a", fin=False) + wire(Side.SERVER, CONT, b"b")
    data += wire(Side.SERVER, PING) + wire(Side.SERVER, BINARY, b"c") * 2
    protocol.receive_data(data, max_messages=2)
    assert [f.data for f in frames(protocol)] == [b"a", b"b", b"", b"c"]
    assert protocol.paused
    protocol.receive_data(b"", max_messages=2)
    assert [f.data for f in frames(protocol)] == [b"c"]
    assert not protocol.paused


# Control frames ----------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_ping_flood_parsed_in_batches(side: Side) -> None:
    """200,000 pings of 125 bytes: at most CONTROL_FRAMES_PER_PARSE pongs at a time."""
    data = wire(side, PING, b"p" * 125) * 200_000
    protocol = Protocol(side)
    pongs = 0
    with peak_memory() as peak:
        for i in range(0, len(data), 2**18):  # reads of 256 KiB, as the I/O layer does
            protocol.receive_data(data[i : i + 2**18])
            while True:
                assert len(frames(protocol)) <= CONTROL_FRAMES_PER_PARSE
                output = protocol.data_to_send()
                assert len(output) <= CONTROL_FRAMES_PER_PARSE
                pongs += len(output)
                del output
                if not protocol.paused:
                    break
                protocol.receive_data(b"")
    assert pongs == 200_000
    # One read, its copy in the buffer, and one batch of events and pongs.
    # (A ping event, its 125 bytes, the pong queued: less than 600 bytes.)
    assert peak() < 2 * 2**18 + CONTROL_FRAMES_PER_PARSE * 600


# Strict conformance ----------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_events_before_a_violation_come_first(side: Side) -> None:
    """Autobahn 3.2: a message, a frame with RSV2 set, a ping, in one read."""
    protocol = Protocol(side)
    data = wire(side, TEXT, b"Hello, world!") + wire(side, TEXT, b"bad", rsv=2)
    data += wire(side, PING)
    protocol.receive_data(data)
    assert [f.data for f in frames(protocol)] == [b"Hello, world!"]
    assert protocol.paused
    assert protocol.data_to_send() == []  # no close frame yet
    assert protocol.parser_exc is None
    protocol.send_text(b"Hello, world!")  # the application answers
    protocol.receive_data(b"")
    assert frames(protocol) == []
    assert isinstance(protocol.parser_exc, ProtocolError)
    assert str(protocol.parser_exc) == "reserved bits must be 0"
    assert not protocol.paused
    output = b"".join(protocol.data_to_send())
    echo = Protocol(Side.CLIENT if side is Side.SERVER else Side.SERVER)
    echo.receive_data(output)
    received = frames(echo)
    assert [f.opcode for f in received] == [TEXT, Opcode.CLOSE]
    assert Close.parse(received[1].data) == Close(1002, "reserved bits must be 0")


def test_pong_before_a_violation_goes_first() -> None:
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(wire(Side.SERVER, PING, b"x") + wire(Side.SERVER, 0x3))
    assert [f.opcode for f in frames(protocol)] == [PING]
    assert protocol.paused
    assert close_frame_sent(protocol) is None  # the pong only
    protocol.receive_data(b"more bytes are ignored")
    assert str(protocol.parser_exc) == "invalid opcode: 0x3"


def test_deferred_violation_applies_at_eof() -> None:
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(wire(Side.SERVER, BINARY, b"ok") + wire(Side.SERVER, CONT, b"no"))
    assert [f.data for f in frames(protocol)] == [b"ok"]
    protocol.receive_eof()
    assert str(protocol.parser_exc) == "unexpected continuation frame"
    assert close_frame_sent(protocol) == (1002, "unexpected continuation frame")


def test_violation_first_fails_at_once() -> None:
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(wire(Side.SERVER, CONT, b"no") + wire(Side.SERVER, BINARY, b"ok"))
    assert frames(protocol) == []
    assert not protocol.paused
    assert str(protocol.parser_exc) == "unexpected continuation frame"


def test_violation_inside_a_message_fails_at_once() -> None:
    """Fragments of the message that fails answer nothing: no reason to wait."""
    protocol = Protocol(Side.SERVER, max_size=10)
    protocol.receive_data(
        wire(Side.SERVER, BINARY, b"12345", fin=False) + wire(Side.SERVER, CONT, b"678901")
    )
    assert [f.data for f in frames(protocol)] == [b"12345"]
    assert not protocol.paused
    assert close_frame_sent(protocol) == (1009, "message of 11 bytes exceeds limit of 10 bytes")


def test_defer_failure_pauses_before_a_violation_alone() -> None:
    """The I/O layer still holds a message (Autobahn 3.4 sends octet by octet)."""
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(wire(Side.SERVER, TEXT, b"hi"))
    assert [f.data for f in frames(protocol)] == [b"hi"]
    protocol.receive_data(wire(Side.SERVER, TEXT, b"", rsv=1), defer_failure=True)
    assert protocol.paused
    assert protocol.parser_exc is None
    assert close_frame_sent(protocol) is None
    protocol.receive_data(b"")
    assert close_frame_sent(protocol) == (1002, "reserved bits must be 0")
