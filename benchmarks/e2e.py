"""End-to-end echo benchmarks over loopback: anyws against other WebSocket libraries.

Run from the repository root: ``python -m benchmarks.e2e [--quick] [--only A,B] [--json FILE]``.
Each sample starts an echo server in its own process, waits until it listens, runs one
workload in a client process, reads the client's measurements and kills the server. The
processes themselves are in ``benchmarks/_e2e_peer.py``. See benchmarks/README.md for
the workloads and how to read the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._e2e_peer import IMPLS, PROFILE_DIR, Impl
from ._util import format_rate, format_table, machine_description, ratio


ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20

#: A table column: formats one sample (the median one) of a row.
Column = Callable[[dict[str, Any]], str]


# Parameters -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    repeat: int  # samples per implementation and workload; the table shows their median
    throughput_messages: int
    latency_messages: int
    large_messages: int
    large_window: int  # 1 MiB messages in flight at most
    large_nowindow_messages: int  # 1 MiB messages, all sent without waiting for echoes
    fanin_connections: int
    fanin_trips: int
    handshakes: int
    idle_connections: int
    compressed_json_messages: int  # 16 KiB JSON texts, compressed
    compressed_random_messages: int  # 1 MiB of random bytes, compressed
    timeout_scale: float  # multiplies the per-workload watchdog timeouts


FULL = Settings(
    repeat=3,
    throughput_messages=10_000,
    latency_messages=2_000,
    large_messages=64,
    large_window=4,
    large_nowindow_messages=200,
    fanin_connections=500,
    fanin_trips=50,
    handshakes=1_000,
    idle_connections=2_000,
    compressed_json_messages=3_000,
    compressed_random_messages=32,
    timeout_scale=1.0,
)
QUICK = Settings(
    repeat=1,
    throughput_messages=2_000,
    latency_messages=500,
    large_messages=16,
    large_window=4,
    large_nowindow_messages=32,
    fanin_connections=100,
    fanin_trips=10,
    handshakes=50,
    idle_connections=100,
    compressed_json_messages=300,
    compressed_random_messages=8,
    timeout_scale=0.5,
)


# Workloads --------------------------------------------------------------------------------


def _count(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda sample: float(sample[key])


@dataclasses.dataclass(frozen=True)
class CpuColumn:
    """Both processes' CPU time per unit of work: steadier than wall time on a busy machine."""

    header: str
    units: Callable[[dict[str, Any]], float]  # how many units a sample did
    scale: float  # seconds -> the unit shown
    unit: str

    def per_unit(self, sample: dict[str, Any]) -> float | None:
        if "server_cpu_s" not in sample:
            return None
        return (sample["server_cpu_s"] + sample["client_cpu_s"]) / self.units(sample)


@dataclasses.dataclass(frozen=True)
class Workload:
    key: str  # as in _e2e_peer.WORKLOADS
    title: str
    value_header: str
    format_value: Callable[[float], str]
    #: "rate": higher is better, ratios are value / reference (> 1x: faster);
    #: "time": lower is better, ratios are reference / value (> 1x: faster);
    #: "cost": lower is better, ratios are value / reference (< 1x: smaller).
    kind: str
    params: Callable[[Settings], dict[str, Any]]
    timeout: float  # seconds, for the full settings
    #: Extra columns: header, and a function of one sample (the median sample's is shown).
    extra: tuple[tuple[str, Column], ...] = ()
    #: CPU time per unit of work (the median over samples), after the extra columns.
    cpu: CpuColumn | None = None
    #: At most this many samples per row in a full run (unless --repeat says otherwise).
    max_repeat: int | None = None
    #: Compare with the raw echo? Not for memory: it keeps next to nothing per connection.
    versus_raw: bool = True
    #: With each library's default compression (permessage-deflate): only the
    #: implementations that have it (`Impl.compression`) run.
    compressed: bool = False

    @property
    def ratio_note(self) -> str:
        if self.kind == "cost":
            return "ratios: this row's value / the reference's (< 1x: less than the reference)"
        if self.kind == "time":
            return "ratios: the reference's time / this row's (> 1x: faster than the reference)"
        return "ratios: this row's rate / the reference's (> 1x: faster than the reference)"


def _us(value: float) -> str:
    return f"{value:.0f} µs"


WORKLOADS = [
    Workload(
        "throughput",
        "64 B messages pipelined over one connection",
        "msgs/s",
        lambda value: format_rate(value, "msgs/s"),
        "rate",
        lambda s: {"messages": s.throughput_messages, "size": 64},
        timeout=60,
        cpu=CpuColumn("CPU/msg", _count("messages"), 1e6, "µs"),
    ),
    Workload(
        "latency",
        "Round trip, one 64 B message at a time",
        "p50",
        _us,
        "cost",
        lambda s: {"messages": s.latency_messages, "size": 64},
        timeout=60,
        extra=(("p99", lambda sample: _us(sample["p99_us"])),),
        cpu=CpuColumn("CPU/trip", _count("messages"), 1e6, "µs"),
    ),
    Workload(
        "large",
        "1 MiB messages pipelined, at most 4 in flight",
        "MB/s",
        lambda value: f"{value:.0f} MB/s",
        "rate",
        lambda s: {"messages": s.large_messages, "size": MiB, "window": s.large_window},
        timeout=30,
        cpu=CpuColumn("CPU/MiB", _count("messages"), 1e3, "ms"),
    ),
    Workload(
        "large-nowindow",
        "1 MiB messages pipelined without a window (the sender never waits for echoes)",
        "MB/s",
        lambda value: f"{value:.0f} MB/s",
        "rate",
        lambda s: {"messages": s.large_nowindow_messages, "size": MiB, "window": 0},
        timeout=90,
        cpu=CpuColumn("CPU/MiB", _count("messages"), 1e3, "ms"),
    ),
    Workload(
        "fanin",
        "Fan-in: concurrent connections x 64 B round trips",
        "total",
        lambda value: f"{value:.2f} s",
        "time",
        lambda s: {"connections": s.fanin_connections, "trips": s.fanin_trips, "size": 64},
        timeout=180,
        extra=(
            ("connect", lambda sample: f"{sample['connect_s']:.2f} s"),
            ("round trips", lambda sample: f"{sample['exchange_s']:.2f} s"),
        ),
        cpu=CpuColumn(
            "CPU/trip", lambda sample: sample["connections"] * sample["trips"], 1e6, "µs"
        ),
    ),
    Workload(
        "handshakes",
        "Handshakes: connect + close, one after the other",
        "conns/s",
        lambda value: format_rate(value, "conns/s"),
        "rate",
        lambda s: {"connections": s.handshakes},
        timeout=60,
        cpu=CpuColumn("CPU/conn", _count("connections"), 1e6, "µs"),
    ),
    Workload(
        "memory",
        "Server memory per idle connection (RSS growth / connections)",
        "KiB/conn",
        lambda value: f"{value:.1f} KiB",
        "cost",
        lambda s: {"connections": s.idle_connections, "size": 64},
        timeout=90,
        versus_raw=False,
        extra=(
            (
                "RSS before -> after",
                lambda sample: (
                    f"{sample['rss_before_kib'] / 1024:.1f} -> "
                    f"{sample['rss_after_kib'] / 1024:.1f} MiB"
                ),
            ),
        ),
    ),
]


def _deflated(sample: dict[str, Any]) -> str:
    ratio_ = sample.get("deflated_ratio")
    return "" if ratio_ is None else f"{100 * ratio_:.0f}%"


JSON_SIZE = 16 * 1024
#: Distinct messages each compressed workload cycles through (the same for everyone).
DISTINCT_MESSAGES = 16

WORKLOADS += [
    Workload(
        "compressed-json",
        "Compressed: 16 KiB JSON texts pipelined, at most 8 in flight, permessage-deflate",
        "msgs/s",
        lambda value: format_rate(value, "msgs/s"),
        "rate",
        lambda s: {
            "messages": s.compressed_json_messages,
            "size": JSON_SIZE,
            "window": 8,
            "distinct": DISTINCT_MESSAGES,
        },
        timeout=60,
        extra=(("deflated", _deflated),),
        cpu=CpuColumn("CPU/msg", _count("messages"), 1e6, "µs"),
        versus_raw=False,
        compressed=True,
    ),
    Workload(
        "compressed-random",
        "Compressed: 1 MiB of random bytes pipelined, at most 4 in flight, permessage-deflate",
        "MB/s",
        lambda value: f"{value:.0f} MB/s",
        "rate",
        lambda s: {
            "messages": s.compressed_random_messages,
            "size": MiB,
            "window": 4,
            "distinct": 4,
        },
        timeout=60,
        extra=(("deflated", _deflated),),
        cpu=CpuColumn("CPU/MiB", _count("messages"), 1e3, "ms"),
        versus_raw=False,
        compressed=True,
    ),
]
WORKLOADS_BY_KEY = {workload.key: workload for workload in WORKLOADS}
#: Names for groups of workloads, for --workloads.
WORKLOAD_GROUPS = {"compressed": [w.key for w in WORKLOADS if w.compressed]}

#: Reference columns: header, and the implementation each row is compared with ("raw"
#: means the raw echo on the row's own backend).
REFERENCES = [
    ("vs websockets-asyncio", "websockets-asyncio"),
    ("vs websockets-trio", "websockets-trio"),
    ("vs trio-websocket", "trio-websocket"),
    ("vs raw echo", "raw"),
]
RAW_BY_BACKEND = {"asyncio": "raw-asyncio", "asyncio+uvloop": "raw-uvloop", "trio": "raw-trio"}


# Running samples ------------------------------------------------------------------------------


class SampleError(Exception):
    pass


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _peer(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks._e2e_peer", *args]


def _wait_ready(server: subprocess.Popen[bytes], timeout: float) -> int:
    """Read the server's ``READY <port>`` line; raise if it exits or takes too long."""
    assert server.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(server.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SampleError(f"server not ready after {timeout:.0f} s")
            if not selector.select(remaining):
                continue
            chunk = os.read(server.stdout.fileno(), 256)
            if not chunk:
                raise SampleError(f"server exited with {server.wait()}")
            line += chunk
    words = line.split()
    if len(words) != 2 or words[0] != b"READY":
        raise SampleError(f"unexpected server output {line!r}")
    return int(words[1])


def _stop(server: subprocess.Popen[bytes]) -> None:
    """End the server: SIGTERM (a profiled one writes its profile), then SIGKILL."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30 if PROFILE_DIR else 2)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_sample(impl: Impl, workload: Workload, settings: Settings) -> dict[str, Any]:
    """Start a server, run one client against it, return the client's result."""
    params = workload.params(settings)
    timeout = workload.timeout * settings.timeout_scale
    params["timeout"] = timeout
    env = _child_env()
    with tempfile.TemporaryFile() as server_err:
        server = subprocess.Popen(
            _peer("server", impl.name, workload.key),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=server_err,
        )
        client: subprocess.Popen[str] | None = None
        try:
            # The client starts (imports) while the server does; it reads the port from
            # its standard input once the server is ready.
            client = subprocess.Popen(
                _peer(
                    "client",
                    impl.name,
                    workload.key,
                    "--port",
                    "-",
                    "--server-pid",
                    str(server.pid),
                    "--params",
                    json.dumps(params),
                ),
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                port = _wait_ready(server, timeout=30)
            except SampleError as exc:
                server_err.seek(0)
                stderr = server_err.read().decode(errors="replace")
                return {"status": "error", "error": str(exc), "stderr": _tail(stderr)}
            try:
                # The client's own watchdog reports a timeout; this is the backstop.
                stdout, stderr = client.communicate(f"{port}\n", timeout=timeout + 30)
            except subprocess.TimeoutExpired:
                return {"status": "timeout", "note": "killed by the parent"}
        finally:
            if client is not None and client.poll() is None:
                client.kill()
                client.communicate()
            _stop(server)
    lines = stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {
            "status": "error",
            "error": f"client exited with {client.returncode} without a result",
            "stderr": _tail(stderr),
        }
    if result.get("status") == "error":
        result["stderr"] = _tail(stderr)
    return result


# Results ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    impl: Impl
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [sample for sample in self.samples if sample.get("status") == "ok"]

    @property
    def failure(self) -> str | None:
        """What went wrong, when no sample succeeded (or one timed out)."""
        statuses = {sample.get("status") for sample in self.samples}
        if "timeout" in statuses:
            return "deadlock/timeout"
        if not self.ok:
            return "error" if self.samples else "not run"
        return None

    @property
    def median_sample(self) -> dict[str, Any] | None:
        """The sample whose value is the median (the lower middle one for an even count)."""
        ok = sorted(self.ok, key=lambda sample: sample["value"])
        return ok[(len(ok) - 1) // 2] if ok else None

    @property
    def value(self) -> float | None:
        if self.failure is not None:
            return None
        return statistics.median(sample["value"] for sample in self.ok)

    def cpu_per_unit(self, column: CpuColumn | None) -> float | None:
        """The median over samples of CPU seconds per unit of work."""
        if column is None or self.failure is not None:
            return None
        values = [column.per_unit(sample) for sample in self.ok]
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    @property
    def spread(self) -> float | None:
        values = [sample["value"] for sample in self.ok]
        if len(values) < 2 or self.failure is not None:
            return None
        return (max(values) - min(values)) / statistics.median(values)


def _ratio(workload: Workload, value: float | None, reference: float | None) -> str:
    if workload.kind == "time":
        return ratio(reference, value)
    return ratio(value, reference)


def reference_value(rows: dict[str, Row], impl: Impl, reference: str) -> float | None:
    name = RAW_BY_BACKEND[impl.backend] if reference == "raw" else reference
    row = rows.get(name)
    return row.value if row is not None else None


def table(workload: Workload, rows: dict[str, Row]) -> str:
    body: list[list[str]] = []
    references = [
        (header, name)
        for header, name in REFERENCES
        if (name == "raw" and workload.versus_raw)
        or (name in rows and rows[name].value is not None)
    ]
    for row in rows.values():
        value = row.value
        sample = row.median_sample
        cells = [row.impl.name, row.impl.backend]
        cpu = row.cpu_per_unit(workload.cpu)
        if value is None or sample is None:
            cells += [row.failure or "error"] + [""] * len(workload.extra)
        else:
            cells.append(workload.format_value(value))
            cells += [cell(sample) for _, cell in workload.extra]
        if workload.cpu is not None:
            scaled = "" if cpu is None else f"{cpu * workload.cpu.scale:.0f} {workload.cpu.unit}"
            cells.append(scaled)
        cells += [
            _ratio(workload, value, reference_value(rows, row.impl, name)) for _, name in references
        ]
        spread = row.spread
        cells.append("" if spread is None else f"{100 * spread:.0f}%")
        body.append(cells)
    headers = [
        "implementation",
        "backend",
        workload.value_header,
        *(header for header, _ in workload.extra),
        *([workload.cpu.header] if workload.cpu is not None else []),
        *(header for header, _ in references),
        "spread",
    ]
    return format_table(headers, body, left=2)


# Targets (from the issue that asked for this benchmark) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    impl: str
    workload: str
    reference: str | None  # an implementation, or None for an absolute bound
    bound: float
    at_least: bool  # True: the ratio (or value) must be >= bound; False: <= bound
    what: str


def _versus_websockets(impl: str, reference: str) -> list[Target]:
    """The issue-13 targets of an asyncio row against websockets on the same loop."""
    return [
        Target(impl, "handshakes", reference, 1.2, True, "handshakes/s"),
        Target(impl, "fanin", reference, 1.2, True, "fan-in (speed)"),
        Target(impl, "memory", reference, 1.0, False, "memory/connection"),
        Target(impl, "large", reference, 1.2, True, "1 MiB pipelined, window 4"),
        Target(impl, "large-nowindow", reference, 1.2, True, "1 MiB pipelined, no window"),
        Target(impl, "throughput", reference, 1.5, True, "64 B throughput"),
        Target(impl, "latency", reference, 0.8, False, "p50 latency"),
    ]


TARGETS = [
    *_versus_websockets("anyws-asyncio", "websockets-asyncio"),
    *_versus_websockets("anyws-uvloop", "websockets-uvloop"),
    Target("anyws-trio", "latency", "raw-trio", 1.5, False, "p50 latency"),
    # fan-in time <= 1.3x the raw echo's: speed >= 1 / 1.3.
    Target("anyws-trio", "fanin", "raw-trio", 1 / 1.3, True, "fan-in (speed; time <= 1.3x)"),
    Target("anyws-trio", "memory", None, 15.0, False, "memory/connection, KiB"),
    Target("anyws-trio", "handshakes", "websockets-trio", 1.5, True, "handshakes/s"),
    Target(
        "anyws-asyncio", "compressed-json", "websockets-asyncio", 1.0, True, "16 KiB JSON, deflate"
    ),
    Target(
        "anyws-asyncio",
        "compressed-random",
        "websockets-asyncio",
        1.0,
        True,
        "1 MiB random, deflate",
    ),
    Target("anyws-trio", "compressed-json", "websockets-trio", 1.0, True, "16 KiB JSON, deflate"),
    Target(
        "anyws-trio", "compressed-random", "websockets-trio", 1.0, True, "1 MiB random, deflate"
    ),
]


def target_lines(results: dict[str, dict[str, Row]]) -> list[str]:
    lines = []
    for target in TARGETS:
        workload = WORKLOADS_BY_KEY[target.workload]
        rows = results.get(target.workload, {})
        row = rows.get(target.impl)
        if row is None:
            continue
        value = row.value
        cpu_note = ""
        if target.reference is None:
            measured: float | None = value
            shown = "-" if value is None else f"{value:.1f}"
            against = ""
        else:
            reference_row = rows.get(target.reference)
            reference = reference_row.value if reference_row is not None else None
            if value is None or reference is None:
                measured = None
            elif workload.kind == "time":
                measured = reference / value
            else:
                measured = value / reference
            shown = "-" if measured is None else f"{measured:.2f}x"
            against = f" vs {target.reference}"
            # The same comparison on CPU time per unit of work, in the same direction.
            cpu = row.cpu_per_unit(workload.cpu)
            reference_cpu = (
                reference_row.cpu_per_unit(workload.cpu) if reference_row is not None else None
            )
            if cpu and reference_cpu:
                cpu_ratio = cpu / reference_cpu if workload.kind == "cost" else reference_cpu / cpu
                cpu_note = f"  [on CPU time: {cpu_ratio:.2f}x]"
        sign = ">=" if target.at_least else "<="
        if measured is None:
            verdict = "not measured"
        elif (measured >= target.bound) if target.at_least else (measured <= target.bound):
            verdict = "met"
        else:
            verdict = "MISSED"
        lines.append(
            f"  {target.impl:<14} {target.what + against:<46} {shown:>7}"
            f"  (target {sign} {target.bound:.3g}{'' if target.reference is None else 'x'})"
            f"  {verdict}{cpu_note}"
        )
    return lines


# Main ---------------------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _available(impl: Impl) -> str | None:
    """None if ``impl`` can run here, else why not."""
    for module in impl.requires:
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} not installed"
        except ImportError:
            return f"{module} not installed"
    return None


def _notes() -> list[str]:
    notes = []
    distributions = ["anyio", "trio", "uvloop", "websockets", "trio-websocket", "wsproto"]
    notes.append(", ".join(f"{d} {_version(d)}" for d in [*distributions, "aiohttp"]))
    try:
        from anyws.sansio import _mask

        notes.append(f"anyws {_version('anyws')}: masking {_mask.IMPLEMENTATION!r}")
    except ImportError:
        pass
    speedups = importlib.util.find_spec("websockets.speedups") is not None
    notes.append(f"websockets {'with' if speedups else 'WITHOUT'} its C speedups")
    if importlib.util.find_spec("websockets.trio") is None:
        notes.append("websockets has no trio API (websockets.trio): no websockets-trio row")
    return notes


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as file:
            return " ".join(file.read().split()[:3])
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a ~1-2 min smoke run")
    parser.add_argument(
        "--only", metavar="A,B", help="implementations to run (default: all of the default set)"
    )
    parser.add_argument(
        "--workloads",
        metavar="A,B",
        help=(
            f"workloads to run, among {','.join([*WORKLOADS_BY_KEY, *WORKLOAD_GROUPS])} "
            "(default: all)"
        ),
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="samples per row (full: 3)")
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    parser.add_argument("--list", action="store_true", help="list the implementations and exit")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeat:
        settings = dataclasses.replace(settings, repeat=args.repeat)

    if args.list:
        for impl in IMPLS.values():
            missing = _available(impl)
            state = missing or ("default" if impl.default else "on request (--only)")
            print(f"{impl.name:<20} {impl.backend:<15} {state}")
        return 0

    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in IMPLS]
        if unknown:
            parser.error(f"unknown implementation(s) {', '.join(unknown)}; see --list")
        impls = [IMPLS[name] for name in names]
    else:
        impls = [impl for impl in IMPLS.values() if impl.default]
    if args.workloads:
        keys = [key.strip() for key in args.workloads.split(",") if key.strip()]
        keys = [k for key in keys for k in WORKLOAD_GROUPS.get(key, [key])]
        unknown = [key for key in keys if key not in WORKLOADS_BY_KEY]
        if unknown:
            parser.error(f"unknown workload(s) {', '.join(unknown)}")
        workloads = [WORKLOADS_BY_KEY[key] for key in keys]
    else:
        workloads = WORKLOADS

    started = time.perf_counter()
    print(machine_description())
    for note in _notes():
        print(f"  {note}")
    skipped = []
    for impl in list(impls):
        missing = _available(impl)
        if missing is not None:
            skipped.append(f"{impl.name} ({missing})")
            impls.remove(impl)
    if skipped:
        print(f"  left out: {', '.join(skipped)}")
    if PROFILE_DIR:
        print(f"  profiling into {PROFILE_DIR}: the numbers are slowed down by the profiler")
    load_start = _loadavg()
    print(
        f"  {settings.repeat} sample(s) per row, each with a fresh server process; "
        f"load average at start: {load_start}"
    )
    print()

    results: dict[str, dict[str, Row]] = {}
    for workload in workloads:
        workload_impls = [impl for impl in impls if impl.compression or not workload.compressed]
        if not workload_impls:
            continue
        rows = {impl.name: Row(impl) for impl in workload_impls}
        results[workload.key] = rows
        print(f"{workload.key:<11}", end="", flush=True, file=sys.stderr)
        workload_started = time.perf_counter()
        repeat = settings.repeat
        if workload.max_repeat is not None and not args.repeat:
            repeat = min(repeat, workload.max_repeat)
        for round_index in range(repeat):
            # Rotate the order: no implementation always runs right after the same other.
            shift = round_index % len(workload_impls)
            for impl in workload_impls[shift:] + workload_impls[:shift]:
                row = rows[impl.name]
                if row.failure == "deadlock/timeout":
                    continue  # once is enough: don't wait for it again
                sample = run_sample(impl, workload, settings)
                row.samples.append(sample)
                status = sample.get("status")
                mark = "." if status == "ok" else ("T" if status == "timeout" else "E")
                print(mark, end="", flush=True, file=sys.stderr)
                if status == "error":
                    print(
                        f"\n  {impl.name} {workload.key}: {sample.get('error')}\n"
                        f"{sample.get('stderr', '')}",
                        file=sys.stderr,
                    )
        print(f" {time.perf_counter() - workload_started:.0f} s", file=sys.stderr)
        samples = f"median of {repeat}" if repeat > 1 else "one sample"
        print(f"{workload.title} ({samples})")
        print(table(workload, rows))
        print(workload.ratio_note)
        print(flush=True)

    lines = target_lines(results)
    if lines:
        print("Targets:")
        for line in lines:
            print(line)
        print()
    load_end = _loadavg()
    print(
        f"Total time: {time.perf_counter() - started:.0f} s; "
        f"load average at start {load_start}, at end {load_end}"
    )

    if args.json:
        document = {
            "metadata": {
                "settings": dataclasses.asdict(settings),
                "notes": _notes(),
                "python": sys.version,
                "machine": machine_description(),
                "loadavg_start": load_start,
                "loadavg_end": load_end,
                "implementations": {impl.name: impl.backend for impl in impls},
            },
            "workloads": {
                key: {
                    name: {"median": row.value, "failure": row.failure, "samples": row.samples}
                    for name, row in rows.items()
                }
                for key, rows in results.items()
            },
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
