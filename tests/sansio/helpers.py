"""Helpers for the sans-I/O tests: frame builders and a connected pair of protocols."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from anyws.sansio import SEND_EOF, Frame, Protocol, Side, State
from anyws.sansio._frames import serialize_frame


MASK = b"\x37\xfa\x21\x3d"


def raw_frame(
    opcode: int,
    data: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
) -> bytes:
    """Build a frame as a peer would send it; ``masked`` is what a client sends."""
    return serialize_frame(
        opcode,
        data,
        fin=fin,
        rsv1=bool(rsv & 4),
        rsv2=bool(rsv & 2),
        rsv3=bool(rsv & 1),
        mask=MASK if masked else None,
    )


def feed(protocol: Protocol, chunks: Iterable[bytes]) -> list[Frame]:
    """Feed chunks to ``protocol`` (``b""`` is EOF) and return the frames received."""
    for chunk in chunks:
        if chunk == SEND_EOF:
            protocol.receive_eof()
        else:
            protocol.receive_data(chunk)
        while protocol.paused:
            protocol.receive_data(b"")
    return [event for event in protocol.events_received() if isinstance(event, Frame)]


def sent_frames(protocol: Protocol) -> list[Frame | None]:
    """Parse what ``protocol`` queued to send, as its peer would; ``None`` stands for EOF."""
    peer = Protocol(Side.SERVER if protocol.side is Side.CLIENT else Side.CLIENT, max_size=None)
    result: list[Frame | None] = []
    for chunk in protocol.data_to_send():
        if chunk == SEND_EOF:
            result.append(None)
        else:
            peer.receive_data(chunk)
            while peer.paused:
                peer.receive_data(b"")
            result.extend(e for e in peer.events_received() if isinstance(e, Frame))
    return result


def close_frame_sent(protocol: Protocol) -> tuple[int, str] | None:
    """Return the (code, reason) of the close frame ``protocol`` queued, if any."""
    from anyws.sansio import Close, Opcode

    for frame in sent_frames(protocol):
        if frame is not None and frame.opcode is Opcode.CLOSE:
            close = Close.parse(frame.data)
            return close.code, close.reason
    return None


def server() -> Protocol:
    return Protocol(Side.SERVER, state=State.OPEN)


def client() -> Protocol:
    return Protocol(Side.CLIENT, state=State.OPEN)


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """Measure the peak of traced memory above what was allocated on entry."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        peak = [0]
        yield lambda: peak[0]
        _, top = tracemalloc.get_traced_memory()
        peak[0] = top - base
    finally:
        tracemalloc.stop()
