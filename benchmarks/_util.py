"""Timing and reporting helpers shared by the benchmarks.

The model: a *case* is a zero-argument callable doing a fixed amount of work (one
*run*), plus how many units that is (frames, bytes). `measure` times a group of cases
that are to be compared with each other:

- each case is calibrated so that one *sample* (a number of back-to-back runs) lasts
  at least ``min_time`` seconds, so that timer resolution and per-sample noise vanish;
- the cases are sampled in rounds, every case once per round, so that a slow period
  of the machine (another process, frequency changes) hits all of them alike: the
  ratios between cases from the same run are much steadier than absolute numbers;
- each sample is converted to seconds per run; the report uses the best (fastest)
  sample, the least disturbed one, and shows the median's distance from it as a
  measure of noise.

The garbage collector stays enabled (real applications run with it); a full
collection runs before each sample so that one case does not pay for another's garbage.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any


__all__ = [
    "Case",
    "Measurement",
    "format_rate",
    "format_table",
    "machine_description",
    "measure",
    "ratio",
    "write_json",
]


@dataclasses.dataclass(frozen=True)
class Case:
    """One thing to time: ``run()`` does ``units`` units of work."""

    name: str
    run: Callable[[], object]
    units: float
    #: Checks the value ``run()`` returned (once, before timing); raises if wrong.
    check: Callable[[Any], None] | None = None


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Seconds per run of one case, one value per sample."""

    name: str
    units: float
    times: tuple[float, ...]
    loops: int

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def rate(self) -> float:
        """Units per second, from the best sample."""
        return self.units / self.best

    @property
    def median_rate(self) -> float:
        return self.units / self.median

    @property
    def spread(self) -> float:
        """How much slower the median sample is than the best one (0.05 is 5%)."""
        return self.median / self.best - 1.0


def _time_loops(run: Callable[[], object], loops: int) -> float:
    gc.collect()
    perf_counter = time.perf_counter
    start = perf_counter()
    for _ in range(loops):
        run()
    return perf_counter() - start


def _calibrate(run: Callable[[], object], min_time: float) -> int:
    """Return how many runs make a sample of at least ``min_time`` seconds."""
    loops = 1
    while True:
        elapsed = _time_loops(run, loops)
        if elapsed >= min_time:
            return loops
        if elapsed <= 0.0:
            loops *= 10
            continue
        # Aim 20% over, so that the next try very likely passes.
        loops = max(loops + 1, math.ceil(loops * min_time * 1.2 / elapsed))


def measure(
    cases: Sequence[Case],
    *,
    repeat: int,
    min_time: float,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Time ``cases`` against each other; see the module docstring for the method."""
    loops: list[int] = []
    for case in cases:
        result = case.run()  # also a warm-up: imports, caches, adaptive interpreter
        if case.check is not None:
            case.check(result)
        loops.append(_calibrate(case.run, min_time))
    samples: list[list[float]] = [[] for _ in cases]
    for round_index in range(repeat):
        # Rotate the order too: no case always runs right after the same other one.
        order = list(range(len(cases)))
        shift = round_index % len(cases)
        for index in order[shift:] + order[:shift]:
            samples[index].append(_time_loops(cases[index].run, loops[index]) / loops[index])
        if progress is not None:
            progress(".")
    return [
        Measurement(case.name, case.units, tuple(times), n)
        for case, times, n in zip(cases, samples, loops, strict=True)
    ]


def ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``"1.85x"``, or ``"-"`` when either is missing."""
    if value is None or reference is None or reference == 0:
        return "-"
    result = value / reference
    return f"{result:.2f}x" if result < 100 else f"{result:.0f}x"


_PREFIXES = [(1e9, "G"), (1e6, "M"), (1e3, "k")]


def format_rate(value: float, unit: str) -> str:
    """``1_234_567, "frames/s"`` -> ``"1.23M frames/s"``; ``"B/s"`` gives ``"1.23 GB/s"``."""
    number, prefix = value, ""
    for scale, name in _PREFIXES:
        if value >= scale:
            number, prefix = value / scale, name
            break
    text = f"{number:.3g}" if number < 100 else f"{number:.0f}"
    if unit == "B/s":
        return f"{text} {prefix}B/s"
    return f"{text}{prefix} {unit}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned.

    A row that is a single empty string draws a separator line.
    """
    body = [list(row) for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        if row == [""]:
            continue
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    output = [line(headers), rule]
    output.extend(rule if row == [""] else line(row) for row in body)
    return "\n".join(output)


def machine_description() -> str:
    """One line about the interpreter and the machine, for the report's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for entry in cpuinfo:
                if entry.startswith("model name"):
                    cpu = entry.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return (
        f"{platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs"
    )


def write_json(path: str, metadata: dict[str, Any], groups: dict[str, list[Measurement]]) -> None:
    """Save every sample, for comparisons across runs or machines."""
    document = {
        "metadata": {**metadata, "python": sys.version, "machine": machine_description()},
        "groups": {
            group: [
                {
                    "name": m.name,
                    "units_per_run": m.units,
                    "loops": m.loops,
                    "seconds_per_run": list(m.times),
                    "best_rate": m.rate,
                    "median_rate": m.median_rate,
                }
                for m in measurements
            ]
            for group, measurements in groups.items()
        },
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
