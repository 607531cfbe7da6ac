"""Property tests of the frame parser: round trips, chunking, and random input."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings, strategies as st

from anyws.exceptions import WebSocketException
from anyws.sansio import SEND_EOF, Frame, Opcode, Protocol, Side, State
from anyws.sansio._frames import serialize_frame

from .helpers import sent_frames


LENGTHS = st.one_of(
    st.integers(0, 130),
    st.sampled_from([125, 126, 127, 65535, 65536, 65537]),
)


@st.composite
def payloads(draw: st.DrawFn, opcode: Opcode) -> bytes:
    length = draw(st.integers(0, 125)) if opcode >= 8 else draw(LENGTHS)
    if opcode is Opcode.TEXT:
        # Valid UTF-8 of about the length asked for.
        text = draw(st.text(min_size=0, max_size=min(length, 200)))
        return text.encode() + b"a" * max(0, length - 200)
    if opcode is Opcode.CLOSE:
        code = draw(st.sampled_from([1000, 1001, 1011, 3000, 4999]))
        reason = draw(st.text(max_size=20)).encode()[:100]
        return code.to_bytes(2, "big") + reason
    return draw(st.binary(min_size=min(length, 64), max_size=min(length, 64))) * (
        length // 64
    ) + draw(st.binary(min_size=length % 64, max_size=length % 64))


@st.composite
def frame_lists(draw: st.DrawFn) -> list[Frame]:
    """A valid sequence of frames: messages, some fragmented, with control frames between."""
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG]))
        if opcode >= 8:
            frames.append(Frame(opcode, draw(payloads(opcode))))
            continue
        fragments = draw(st.integers(1, 3))
        data = draw(payloads(opcode))
        if opcode is Opcode.TEXT:
            pieces = [data] + [b""] * (fragments - 1)
        else:
            cut = sorted(
                draw(
                    st.lists(
                        st.integers(0, len(data)), min_size=fragments - 1, max_size=fragments - 1
                    )
                )
            )
            bounds = [0, *cut, len(data)]
            pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        for index, piece in enumerate(pieces):
            frames.append(
                Frame(opcode if index == 0 else Opcode.CONT, piece, fin=index == len(pieces) - 1)
            )
            if draw(st.booleans()) and index < len(pieces) - 1:
                frames.append(Frame(Opcode.PING, b"between"))
    if draw(st.booleans()):
        frames.append(Frame(Opcode.CLOSE, draw(payloads(Opcode.CLOSE))))
    return frames


def build(frames: list[Frame], *, masked: bool) -> bytes:
    return b"".join(
        serialize_frame(f.opcode, f.data, fin=f.fin, mask=b"\x01\x02\x03\x04" if masked else None)
        for f in frames
    )


def parse(side: Side, chunks: list[bytes]) -> tuple[list[Frame], list[Frame | None]]:
    """Feed ``chunks`` to a protocol; return the frames it received and those it sent."""
    protocol = Protocol(side, state=State.OPEN, max_size=None)
    for chunk in chunks:
        protocol.receive_data(chunk)
    events = [e for e in protocol.events_received() if isinstance(e, Frame)]
    return events, sent_frames(protocol)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=frame_lists(), side=st.sampled_from(Side), cuts=st.lists(st.integers(0, 2**20)))
def test_round_trip_whole_and_chunked(frames: list[Frame], side: Side, cuts: list[int]) -> None:
    stream = build(frames, masked=side is Side.SERVER)
    whole, whole_out = parse(side, [stream])
    assert whole == frames
    pieces, pieces_out = parse(side, chunked(stream, cuts))
    assert pieces == frames
    assert pieces_out == whole_out


@settings(max_examples=20, deadline=None)
@given(frames=frame_lists(), side=st.sampled_from(Side))
def test_byte_by_byte_equals_whole(frames: list[Frame], side: Side) -> None:
    stream = build(frames, masked=side is Side.SERVER)[:3000]
    whole, whole_out = parse(side, [stream])
    bytewise, bytewise_out = parse(side, [stream[i : i + 1] for i in range(len(stream))])
    assert bytewise == whole
    assert bytewise_out == whole_out


@settings(max_examples=30, deadline=None)
@given(frames=frame_lists(), side=st.sampled_from(Side))
def test_sent_frames_parse_back(frames: list[Frame], side: Side) -> None:
    """What a protocol sends is what its peer receives."""
    sender = Protocol(side, max_size=None)
    for frame in frames:
        if frame.opcode is Opcode.TEXT:
            sender.send_text(frame.data, fin=frame.fin)
        elif frame.opcode is Opcode.BINARY:
            sender.send_binary(frame.data, fin=frame.fin)
        elif frame.opcode is Opcode.CONT:
            sender.send_continuation(frame.data, fin=frame.fin)
        elif frame.opcode is Opcode.PING:
            sender.send_ping(frame.data)
        elif frame.opcode is Opcode.PONG:
            sender.send_pong(frame.data)
        else:
            sender.send_close(int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode())
    peer_side = Side.CLIENT if side is Side.SERVER else Side.SERVER
    received = Protocol(peer_side, max_size=None)
    for chunk in sender.data_to_send():
        received.receive_data(chunk)
    assert received.events_received() == frames


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300),
    side=st.sampled_from(Side),
    max_size=st.none() | st.integers(0, 100),
    cuts=st.lists(st.integers(0, 300), max_size=5),
)
def test_random_bytes_never_raise(
    data: bytes, side: Side, max_size: int | None, cuts: list[int]
) -> None:
    protocol = Protocol(side, max_size=max_size)
    for chunk in chunked(data, cuts):
        protocol.receive_data(chunk)
    protocol.receive_eof()
    protocol.events_received()
    output = protocol.data_to_send()
    assert output[-1] == SEND_EOF
    assert protocol.state is State.CLOSED
    exc = protocol.close_exc
    assert isinstance(exc, WebSocketException)
    str(exc)
