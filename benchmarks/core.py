"""Benchmark the sans-I/O core against websockets' and wsproto's, in one run.

Run from the repository root: ``python -m benchmarks.core [--quick] [--json FILE]``.
See benchmarks/README.md for the workloads and how to read the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._util import Case, Measurement, format_rate, format_table, machine_description, measure, ratio


# Parameters -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    small_frames: int  # frames in each 64-byte stream, and frames built per run
    large_frames: int  # 1 MiB frames in the large stream
    repeat: int  # samples per case
    min_time: float  # seconds per sample, at least


FULL = Settings(small_frames=20_000, large_frames=16, repeat=7, min_time=0.08)
QUICK = Settings(small_frames=2_000, large_frames=4, repeat=3, min_time=0.01)

SMALL = 64
LARGE = 2**20
READ_SIZE = 64 * 1024  # bytes per receive_data() call, like one socket read
MASK_SIZES = (64, 4 * 1024, 2**20)

#: 64 bytes of ASCII JSON, a typical small text message.
TEXT_PAYLOAD = b'{"type":"chat","id":1234567,"room":"lobby","body":"hello there!"}'[:SMALL]
assert len(TEXT_PAYLOAD) == SMALL


# Libraries ----------------------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclasses.dataclass
class Libraries:
    """What could be imported; a missing library's rows are left out of the report."""

    notes: list[str] = dataclasses.field(default_factory=list)
    anyws: Any = None  # anyws.sansio
    anyws_mask: Any = None  # anyws.sansio._mask
    websockets: Any = None  # websockets.protocol
    websockets_c_mask: Callable[[bytes, bytes], bytes] | None = None
    websockets_py_mask: Callable[[bytes, bytes], bytes] | None = None
    wsproto: Any = None  # wsproto.connection
    wsproto_events: Any = None  # wsproto.events
    wsproto_masker: Any = None  # wsproto.frame_protocol.XorMaskerSimple


def load_libraries() -> Libraries:
    libs = Libraries()
    try:
        from anyws.sansio import _mask as anyws_mask

        libs.anyws_mask = anyws_mask
        libs.notes.append(
            f"anyws {_version('anyws')}: masking implementation {anyws_mask.IMPLEMENTATION!r}"
        )
    except ImportError as exc:
        libs.notes.append(f"anyws: not importable ({exc}); run from the repository root")
    try:
        import anyws.sansio as anyws_sansio

        anyws_sansio.Protocol  # noqa: B018 - fail here, not in the middle of the run
        libs.anyws = anyws_sansio
    except (ImportError, AttributeError) as exc:
        libs.notes.append(f"anyws: no sans-I/O Protocol yet ({exc}); its rows are skipped")

    try:
        import websockets.protocol
        import websockets.utils

        libs.websockets = websockets.protocol
        libs.websockets_py_mask = websockets.utils.apply_mask
        try:
            from websockets.speedups import apply_mask as websockets_c_mask

            libs.websockets_c_mask = websockets_c_mask
            speedups = "with its C speedups"
        except ImportError:
            speedups = "WITHOUT its C speedups (pure-Python masking)"
        libs.notes.append(f"websockets {_version('websockets')} {speedups}")
    except ImportError:
        libs.notes.append("websockets: not installed; no ratios to it")

    try:
        import wsproto.connection
        import wsproto.events
        import wsproto.frame_protocol

        libs.wsproto = wsproto.connection
        libs.wsproto_events = wsproto.events
        libs.wsproto_masker = wsproto.frame_protocol.XorMaskerSimple
        libs.notes.append(f"wsproto {_version('wsproto')} (pure Python)")
    except ImportError:
        libs.notes.append("wsproto: not installed; no ratios to it")
    return libs


# Byte streams ---------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final, masked frame, built here so that no library under test builds the input."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )
    return header + mask + masked


def client_stream(opcode: int, payloads: Sequence[bytes], seed: int) -> list[bytes]:
    """Frames as a client sends them, cut in ``READ_SIZE`` reads (not at frame boundaries)."""
    rng = random.Random(seed)
    stream = b"".join(client_frame(opcode, payload, rng.randbytes(4)) for payload in payloads)
    return [stream[start : start + READ_SIZE] for start in range(0, len(stream), READ_SIZE)]


# Cases ---------------------------------------------------------------------------------
#
# Each parse run feeds the whole stream to a new server-side protocol, one read at a
# time, and after each read drains the events (and, where the API has it, the bytes to
# send), like an I/O loop. Every run returns the number of payload bytes delivered, which
# is checked once: a library that rejected the input would otherwise look very fast.
# A text message is delivered as ``str``: websockets' and anyws' frames carry bytes, so
# the consumer decodes them, as an application does; wsproto decodes on its own.


def anyws_parse(libs: Libraries, chunks: list[bytes], text: bool) -> Callable[[], int]:
    sansio = libs.anyws

    def run() -> int:
        protocol = sansio.Protocol(sansio.Side.SERVER, state=sansio.State.OPEN, max_size=None)
        receive, events, output = (
            protocol.receive_data,
            protocol.events_received,
            protocol.data_to_send,
        )
        total = 0
        for chunk in chunks:
            receive(chunk)
            for frame in events():
                total += len(frame.data.decode() if text else frame.data)
            output()
        return total

    return run


def websockets_parse(libs: Libraries, chunks: list[bytes], text: bool) -> Callable[[], int]:
    ws = libs.websockets

    def run() -> int:
        protocol = ws.Protocol(ws.Side.SERVER, state=ws.State.OPEN, max_size=None)
        receive, events, output = (
            protocol.receive_data,
            protocol.events_received,
            protocol.data_to_send,
        )
        total = 0
        for chunk in chunks:
            receive(chunk)
            for frame in events():
                total += len(frame.data.decode() if text else frame.data)
            output()
        return total

    return run


def wsproto_parse(libs: Libraries, chunks: list[bytes], text: bool) -> Callable[[], int]:
    connection_class = libs.wsproto.Connection
    server = libs.wsproto.ConnectionType.SERVER
    joiner: Any = "" if text else b""

    def run() -> int:
        connection = connection_class(server)
        receive, events = connection.receive_data, connection.events
        total = 0
        # wsproto hands out a large message in pieces, as reads arrive: join them,
        # as an application that wants whole messages must.
        parts: list[Any] = []
        for chunk in chunks:
            receive(chunk)
            for event in events():
                if event.message_finished and not parts:
                    total += len(event.data)
                else:
                    parts.append(event.data)
                    if event.message_finished:
                        total += len(joiner.join(parts))
                        parts.clear()
        return total

    return run


def anyws_build(libs: Libraries, payload: bytes, count: int, client: bool) -> Callable[[], int]:
    sansio = libs.anyws
    side = sansio.Side.CLIENT if client else sansio.Side.SERVER

    def run() -> int:
        protocol = sansio.Protocol(side, state=sansio.State.OPEN)
        send, output = protocol.send_binary, protocol.data_to_send
        total = 0
        for _ in range(count):
            send(payload)
            for data in output():
                total += len(data)
        return total

    return run


def websockets_build(
    libs: Libraries, payload: bytes, count: int, client: bool
) -> Callable[[], int]:
    ws = libs.websockets
    side = ws.Side.CLIENT if client else ws.Side.SERVER

    def run() -> int:
        protocol = ws.Protocol(side, state=ws.State.OPEN)
        send, output = protocol.send_binary, protocol.data_to_send
        total = 0
        for _ in range(count):
            send(payload)
            for data in output():
                total += len(data)
        return total

    return run


def wsproto_build(libs: Libraries, payload: bytes, count: int, client: bool) -> Callable[[], int]:
    kind = libs.wsproto.ConnectionType
    connection_class = libs.wsproto.Connection
    message_class = libs.wsproto_events.BytesMessage

    def run() -> int:
        connection = connection_class(kind.CLIENT if client else kind.SERVER)
        send = connection.send
        total = 0
        for _ in range(count):
            total += len(send(message_class(data=payload)))
        return total

    return run


def expect(value: int, what: str) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        if result != value:
            raise AssertionError(f"{what}: expected {value}, got {result!r}")

    return check


def mask_run(
    function: Callable[[bytes, bytes], object], size: int
) -> tuple[Callable[[], None], int]:
    """A run of ``calls`` maskings of ``size`` bytes, about 1 MB in all; returns it and calls."""
    data = random.Random(size).randbytes(size)
    mask = b"\x9a\x3c\x5e\x71"
    calls = max(1, 2**20 // size)

    def run() -> None:
        for _ in range(calls):
            function(data, mask)

    return run, calls


# The report ------------------------------------------------------------------------------


@dataclasses.dataclass
class Group:
    """A workload: rows that are compared with each other."""

    title: str
    unit: str  # "frames/s" or "B/s"
    cases: list[Case]
    #: Row name -> the rows it is compared with (for "vs websockets", "vs wsproto").
    references: dict[str, tuple[str | None, str | None]] = dataclasses.field(default_factory=dict)
    results: list[Measurement] = dataclasses.field(default_factory=list)

    def reference_of(self, name: str) -> tuple[str | None, str | None]:
        return self.references.get(name, ("websockets", "wsproto"))


def build_groups(libs: Libraries, settings: Settings) -> list[Group]:
    groups: list[Group] = []
    n = settings.small_frames
    rng = random.Random(1)

    # (a) parse 64-byte masked frames, (b) parse 1 MiB masked frames.
    binary_payloads = [rng.randbytes(SMALL) for _ in range(n)]
    large_payloads = [rng.randbytes(LARGE) for _ in range(settings.large_frames)]
    streams = [
        ("parse 64 B binary", 0x2, [*binary_payloads], False, "frames/s"),
        ("parse 64 B text -> str", 0x1, [TEXT_PAYLOAD] * n, True, "frames/s"),
        ("parse 1 MiB binary", 0x2, large_payloads, False, "B/s"),
    ]
    parsers = [
        ("anyws", libs.anyws, anyws_parse),
        ("websockets", libs.websockets, websockets_parse),
        ("wsproto", libs.wsproto, wsproto_parse),
    ]
    for title, opcode, payloads, text, unit in streams:
        chunks = client_stream(opcode, payloads, seed=len(title))
        total = sum(map(len, payloads))
        units = total if unit == "B/s" else len(payloads)
        cases = [
            Case(name, factory(libs, chunks, text), units, expect(total, f"{name} {title}"))
            for name, available, factory in parsers
            if available is not None
        ]
        groups.append(Group(title, unit, cases))

    # (c) build 64-byte binary frames.
    builders = [
        ("anyws", libs.anyws, anyws_build),
        ("websockets", libs.websockets, websockets_build),
        ("wsproto", libs.wsproto, wsproto_build),
    ]
    payload = binary_payloads[0]
    for title, client in [
        ("build 64 B binary, server", False),
        ("build 64 B binary, client (masked)", True),
    ]:
        size = n * (SMALL + 2 + (4 if client else 0))
        cases = [
            Case(name, factory(libs, payload, n, client), n, expect(size, f"{name} {title}"))
            for name, available, factory in builders
            if available is not None
        ]
        groups.append(Group(title, "frames/s", cases))

    # (d) masking alone, per implementation.
    def wsproto_mask(data: bytes, mask: bytes) -> bytearray:
        result: bytearray = libs.wsproto_masker(mask).process(data)
        return result

    maskers: list[tuple[str, Callable[[bytes, bytes], object] | None]] = [
        ("anyws C", libs.anyws_mask.apply_mask_c if libs.anyws_mask else None),
        ("anyws Python", libs.anyws_mask.apply_mask_py if libs.anyws_mask else None),
        ("websockets C", libs.websockets_c_mask),
        ("websockets Python", libs.websockets_py_mask),
        ("wsproto Python", wsproto_mask if libs.wsproto_masker else None),
    ]
    # C is compared with C, Python with Python.
    references: dict[str, tuple[str | None, str | None]] = {
        "anyws C": ("websockets C", None),
        "anyws Python": ("websockets Python", "wsproto Python"),
        "websockets C": ("websockets C", None),
        "websockets Python": ("websockets Python", "wsproto Python"),
        "wsproto Python": ("websockets Python", "wsproto Python"),
    }
    for size in MASK_SIZES:
        cases = []
        for name, function in maskers:
            if function is None:
                continue
            run, calls = mask_run(function, size)
            cases.append(Case(name, run, calls * size))
        groups.append(Group(f"mask {_size_label(size)}", "B/s", cases, references))
    return groups


def _size_label(size: int) -> str:
    if size >= 2**20:
        return f"{size // 2**20} MiB"
    if size >= 1024:
        return f"{size // 1024} KiB"
    return f"{size} B"


def report(groups: list[Group]) -> str:
    rows: list[list[str]] = []
    for group in groups:
        if rows:
            rows.append([""])
        by_name = {m.name: m for m in group.results}
        for m in group.results:
            ws_ref, wsproto_ref = group.reference_of(m.name)
            ws = by_name.get(ws_ref) if ws_ref else None
            wp = by_name.get(wsproto_ref) if wsproto_ref else None
            rows.append(
                [
                    group.title if m is group.results[0] else "",
                    m.name,
                    format_rate(m.rate, group.unit),
                    format_rate(m.median_rate, group.unit),
                    ratio(m.rate, ws.rate if ws else None),
                    ratio(m.rate, wp.rate if wp else None),
                    f"{100 * m.spread:.0f}%",
                ]
            )
    headers = ["workload", "library", "best", "median", "vs websockets", "vs wsproto", "noise"]
    return format_table(headers, rows, left=2)


def summary(groups: list[Group]) -> list[str]:
    """The C-versus-Python masking line."""
    parts = []
    for group in groups:
        if not group.title.startswith("mask "):
            continue
        by_name = {m.name: m for m in group.results}
        c, py = by_name.get("anyws C"), by_name.get("anyws Python")
        if c and py:
            parts.append(
                f"{group.title[5:]}: {format_rate(c.rate, 'B/s')} vs "
                f"{format_rate(py.rate, 'B/s')} ({c.rate / py.rate:.0f}x)"
            )
    if not parts:
        return []
    return ["anyws masking, C vs pure Python: " + "; ".join(parts)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.core", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a ~5 s smoke run, rough numbers")
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="samples per case (default: 7, quick: 3)"
    )
    parser.add_argument("--filter", metavar="TEXT", help="only the workloads whose title has TEXT")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeat:
        settings = dataclasses.replace(settings, repeat=args.repeat)

    started = time.perf_counter()
    libs = load_libraries()
    print(machine_description())
    for note in libs.notes:
        print(f"  {note}")
    if os.environ.get("ANYWS_NO_SPEEDUPS"):
        print("  ANYWS_NO_SPEEDUPS is set: anyws runs on pure-Python masking")
    print(
        f"  {settings.repeat} samples of >= {settings.min_time * 1000:.0f} ms per case, "
        f"{settings.small_frames} small frames per stream, reads of {READ_SIZE // 1024} KiB"
    )
    print()

    groups = build_groups(libs, settings)
    if args.filter:
        groups = [group for group in groups if args.filter in group.title]
    for group in groups:
        if not group.cases:
            continue
        print(f"{group.title} ", end="", flush=True, file=sys.stderr)
        group.results = measure(
            group.cases,
            repeat=settings.repeat,
            min_time=settings.min_time,
            progress=lambda mark: print(mark, end="", flush=True, file=sys.stderr),
        )
        print(file=sys.stderr)

    groups = [group for group in groups if group.results]
    print(report(groups))
    print()
    for line in summary(groups):
        print(line)
    print(
        "best: the fastest sample; median: the typical one; noise: median vs best. "
        "Ratios compare best rates of the same run (> 1x: faster than that library)."
    )
    print(f"Total time: {time.perf_counter() - started:.1f} s")

    if args.json:
        from ._util import write_json

        write_json(
            args.json,
            {"settings": dataclasses.asdict(settings), "notes": libs.notes},
            {group.title: group.results for group in groups},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
