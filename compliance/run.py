"""Run the Autobahn Testsuite against anyws, as a server and as a client, and judge it.

    python compliance/run.py --wstest PATH/TO/wstest [--backend B]... [--role R]...
        [--full | --cases PATTERN...] [--jobs N] [--timeout SECONDS] [--reports DIR]

For each backend (asyncio, trio) and role, one *run*:

- ``server``: start ``server.py`` (the anyws echo server) and run
  ``wstest -m fuzzingclient`` against it;
- ``client``: start ``wstest -m fuzzingserver`` and run ``client.py`` (the anyws
  echo client) against it.

Which cases: by default every group but a sample of 12.* and 13.* (permessage-deflate,
slow on wstest's side: see `SAMPLE`); ``--full``, every case of the configs;
``--cases``, the patterns given.

Each run writes its logs, its wstest config and wstest's reports to its own
directory, ``DIR/ROLE-BACKEND/``. Then this script reads each ``index.json``,
prints a summary per backend and role (also written to ``DIR/summary.md``) with
the cases that are not OK, and exits with 1 if any case failed (see `FATAL`),
is missing from the report, or a run broke.

Every process it starts runs in a process group of its own and is stopped (SIGTERM,
then SIGKILL) when its run ends, also on failure, timeout or Ctrl-C. Every wait is
bounded. POSIX only: wstest runs on Python 2.7, set up by ``nox -s autobahn``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
ROLES = ("server", "client")
BACKENDS = ("asyncio", "trio")

#: wstest's names for the case groups (``autobahntestsuite.case.CaseCategories``).
GROUPS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}

#: The sub-cases of 12.* and 13.* that a default run keeps (``--full`` runs them all).
#: Every sub-group runs: 12.1 to 12.5 are five payloads (text and binary, compressible
#: or not) with the default offer, 13.1 to 13.7 the parameters that the two sides
#: negotiate (context takeover, window bits 9 and 15). Of the 18 sub-cases of each
#: (1000 messages of a size, some auto-fragmented), three of the quick ones: 2, 64-byte
#: messages (context takeover over many small messages); 6, 8 KiB (beyond the 4 KiB
#: window that serve() asks for, and the 512 bytes of 9-bit windows); 11, 8 KiB in
#: 256-byte fragments (a compressed message in continuation frames). The larger ones
#: (up to 128 KiB, 10 s each) are what makes a full run take 12 to 13 minutes per run.
SAMPLE_SUBCASES = (2, 6, 11)
SAMPLE = [
    f"{group}.{sub}.{case}"
    for group, subs in (("12", range(1, 6)), ("13", range(1, 8)))
    for sub in subs
    for case in SAMPLE_SUBCASES
]
#: What a default run selects: every group but 12.* and 13.*, and `SAMPLE`.
DEFAULT_CASES = [f"{group}.*" for group in GROUPS if group not in ("12", "13")] + SAMPLE

#: The main columns of the summary: a case's ``behavior``. A case also has a
#: ``behaviorClose``: OK, INFORMATIONAL, UNCLEAN, WRONG CODE, FAILED (the wrong
#: endpoint closed) or FAILED BY CLIENT (wstest, as the client, had to close TCP).
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: What fails the run: in ``behavior`` or in ``behaviorClose``.
FATAL = frozenset({"FAILED", "NON-STRICT", "UNCLEAN", "WRONG CODE"})

#: How long a testee or wstest gets to listen, and to exit once told to stop.
START_TIMEOUT = 60.0
STOP_GRACE = 5.0
#: How long wstest -m fuzzingclient gets to exit by itself once its reports are
#: written: it may not exit at all.
EXIT_GRACE = 10.0

#: Set on Ctrl-C or SIGTERM: every wait stops and every run stops its processes.
STOPPING = threading.Event()


class RunError(Exception):
    """A run broke: a process died, or a wait timed out."""


class Interrupted(Exception):
    """`STOPPING` was set."""


# Processes -------------------------------------------------------------------

_processes: set[subprocess.Popen[bytes]] = set()
_processes_lock = threading.Lock()


def start(args: list[str], log: Path, *, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in a new process group, its output going to ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
    with open(log, "ab") as output, _processes_lock:
        if STOPPING.is_set():
            raise Interrupted
        output.write(f"$ {' '.join(args)}\n".encode())
        output.flush()
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        _processes.add(process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and its group: SIGTERM, then SIGKILL after `STOP_GRACE`."""
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_GRACE)
    finally:
        with _processes_lock:
            _processes.discard(process)


def stop_all() -> None:
    with _processes_lock:
        processes = list(_processes)
    for process in processes:
        stop(process)


@contextlib.contextmanager
def running(args: list[str], log: Path, *, cwd: Path | None = None) -> Iterator[Any]:
    process = start(args, log, cwd=cwd)
    try:
        yield process
    finally:
        stop(process)


# Waiting ---------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; `RunError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if STOPPING.is_set():
            raise Interrupted
        if time.monotonic() > deadline:
            raise RunError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


_ports_taken: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port free on 127.0.0.1 now, and not given to another run before."""
    with _ports_lock:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _ports_taken:
                _ports_taken.add(port)
                return port


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def read_index(report_dir: Path) -> dict[str, dict[str, dict[str, Any]]] | None:
    """wstest's ``index.json``, or None while it's missing or being written."""
    try:
        index = json.loads((report_dir / "index.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def reports_written(report_dir: Path) -> bool:
    """Whether wstest wrote ``index.json`` and then the report of each case in it."""
    index = read_index(report_dir)
    return index is not None and all(
        (report_dir / case["reportfile"]).exists()
        for cases in index.values()
        for case in cases.values()
    )


# Runs ------------------------------------------------------------------------


@dataclass
class Run:
    role: str
    backend: str
    directory: Path
    #: Picked when the run starts, so that it is still free then.
    port: int = 0
    config: Path | None = None
    error: str | None = None
    duration: float = 0.0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def agent(self) -> str:
        return f"anyws-{self.backend}"

    @property
    def report_dir(self) -> Path:
        return self.directory / "report"

    @property
    def title(self) -> str:
        if self.role == "server":
            return f"anyws server on {self.backend} (tested by wstest -m fuzzingclient)"
        return f"anyws client on {self.backend} (tested by wstest -m fuzzingserver)"


def write_config(run: Run, cases: list[str] | None) -> Path:
    mode = "fuzzingclient" if run.role == "server" else "fuzzingserver"
    config = json.loads((HERE / "config" / f"{mode}.json").read_text())
    config["outdir"] = str(run.report_dir)
    if run.role == "server":
        config["servers"] = [{"agent": run.agent, "url": f"ws://127.0.0.1:{run.port}"}]
    else:
        config["url"] = f"ws://127.0.0.1:{run.port}"
    if cases:
        config["cases"] = cases
    path = run.directory / f"{mode}.json"
    path.write_text(json.dumps(config, indent=4) + "\n")
    return path


def run_server_role(run: Run, wstest: str, config: Path, timeout: float) -> None:
    """wstest -m fuzzingclient against server.py."""
    server_args = [sys.executable, str(HERE / "server.py"), "--backend", run.backend]
    server_args += ["--port", str(run.port)]
    with running(server_args, run.directory / "server.log") as server:
        wait_for(
            lambda: server.poll() is not None or listening(run.port),
            START_TIMEOUT,
            "server.py to listen",
        )
        if server.poll() is not None:
            raise RunError(f"server.py exited with {server.returncode}: see server.log")
        wstest_args = [wstest, "-m", "fuzzingclient", "-s", str(config)]
        with running(wstest_args, run.directory / "wstest.log", cwd=run.directory) as client:
            wait_for(
                lambda: client.poll() is not None or reports_written(run.report_dir),
                timeout,
                "wstest -m fuzzingclient to run every case",
            )
            # It may not exit by itself after writing its reports; then it is stopped.
            with contextlib.suppress(RunError):
                wait_for(lambda: client.poll() is not None, EXIT_GRACE, "wstest to exit")
            if client.poll() is None:
                print(
                    f"{run.role}-{run.backend}: wstest wrote its reports, didn't exit: stopping it",
                    flush=True,
                )
        if not reports_written(run.report_dir):
            raise RunError(f"wstest exited with {client.returncode}, no report: see wstest.log")
        if server.poll() is not None:
            raise RunError(
                f"server.py died with {server.returncode} during the run: see server.log"
            )


def run_client_role(run: Run, wstest: str, config: Path, timeout: float) -> None:
    """client.py against wstest -m fuzzingserver (-u 0: no web UI, so no port 8080)."""
    wstest_args = [wstest, "-m", "fuzzingserver", "-s", str(config), "-u", "0"]
    with running(wstest_args, run.directory / "wstest.log", cwd=run.directory) as server:
        wait_for(
            lambda: server.poll() is not None or listening(run.port),
            START_TIMEOUT,
            "wstest -m fuzzingserver to listen",
        )
        if server.poll() is not None:
            raise RunError(f"wstest exited with {server.returncode}: see wstest.log")
        client_args = [sys.executable, str(HERE / "client.py"), "--backend", run.backend]
        client_args += ["--uri", f"ws://127.0.0.1:{run.port}", "--agent", run.agent]
        with running(client_args, run.directory / "client.log") as client:
            wait_for(lambda: client.poll() is not None, timeout, "client.py to run every case")
        # client.py returns once wstest answered /updateReports, after writing them.
        if client.returncode == 0:
            with contextlib.suppress(RunError):
                wait_for(lambda: reports_written(run.report_dir), START_TIMEOUT, "the reports")
        if not reports_written(run.report_dir):
            raise RunError(f"client.py exited with {client.returncode}, no report: see client.log")
        if client.returncode != 0:
            raise RunError(f"client.py exited with {client.returncode}: see client.log")


def execute(run: Run, wstest: str, cases: list[str] | None, timeout: float) -> Run:
    shutil.rmtree(run.directory, ignore_errors=True)
    run.directory.mkdir(parents=True)
    run.port = free_port()
    config = run.config = write_config(run, cases)
    print(f"start: {run.role}-{run.backend} in {run.directory}", flush=True)
    started = time.monotonic()
    try:
        if run.role == "server":
            run_server_role(run, wstest, config, timeout)
        else:
            run_client_role(run, wstest, config, timeout)
    except RunError as exc:
        run.error = str(exc)
    run.duration = time.monotonic() - started
    index = read_index(run.report_dir) or {}
    run.results = index.get(run.agent, {})
    status = f"error: {run.error}" if run.error else f"{len(run.results)} cases"
    print(f"done:  {run.role}-{run.backend} in {run.duration:.0f}s, {status}", flush=True)
    return run


def expected_cases(wstest: str, config: Path) -> list[str] | None:
    """The case ids that wstest selects from ``config``, asked of wstest's own Python."""
    python = Path(wstest).with_name("python")
    code = (
        "import json, sys\n"
        "from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, "
        "CaseSetname, CaseBasename\n"
        "from autobahntestsuite.caseset import CaseSet\n"
        "spec = json.load(open(sys.argv[1]))\n"
        "case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)\n"
        "sys.stdout.write(json.dumps(case_set.parseSpecCases(spec)))\n"
    )
    try:
        result = subprocess.run(
            [str(python), "-c", code, str(config)],
            capture_output=True,
            timeout=60,
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        cases = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"warning: can't list the expected cases ({exc}); not checking for missing ones")
        return None
    return [str(case) for case in cases]


# Judging ---------------------------------------------------------------------


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def problems(result: dict[str, Any]) -> str | None:
    """How a case's result isn't OK, or None."""
    behavior, close = result["behavior"], result["behaviorClose"]
    if behavior == "OK" and close in ("OK", "INFORMATIONAL"):
        return None
    return behavior if close in ("OK", "INFORMATIONAL") else f"{behavior}, close {close}"


def is_fatal(result: dict[str, Any]) -> bool:
    return result["behavior"] in FATAL or result["behaviorClose"] in FATAL


def case_detail(run: Run, result: dict[str, Any]) -> str:
    """wstest's explanation of a case's result, from the case's own report."""
    try:
        report = json.loads((run.report_dir / result["reportfile"]).read_text())
    except (OSError, ValueError):
        return ""
    parts = []
    if report.get("result") != "Actual events match at least one expected.":
        parts.append(report.get("result", ""))
    if result["behaviorClose"] not in ("OK", "INFORMATIONAL"):
        parts.append(report.get("resultClose", ""))
    return "; ".join(part for part in parts if part)


def summarize(run: Run, expected: list[str] | None) -> tuple[list[str], int]:
    """Markdown lines for one run, and how many of its cases fail it."""
    results = run.results
    missing = sorted(set(expected or ()) - set(results), key=case_key)
    groups: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case_id, result in results.items():
        counter = groups[case_id.split(".")[0]]
        counter["cases"] += 1
        counter[result["behavior"] if result["behavior"] in BEHAVIORS else "other"] += 1
        if result["behaviorClose"] not in ("OK", "INFORMATIONAL"):
            counter[f"close {result['behaviorClose']}"] += 1
    for case_id in missing:
        groups[case_id.split(".")[0]]["missing"] += 1
    # The behaviors and the two closing failures always; other columns when they occur.
    columns = ["cases", *BEHAVIORS, "close UNCLEAN", "close FAILED"]
    seen = {key for counter in groups.values() for key in counter}
    columns += sorted(seen - {*columns, "other", "missing"})  # WRONG CODE, FAILED BY CLIENT
    columns += [column for column in ("other", "missing") if column in seen]
    lines = [f"### {run.title}", ""]
    if run.error:
        lines += [f"**The run broke: {run.error}**", ""]
    lines += [
        "| group | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    total: collections.Counter[str] = collections.Counter()
    for group in sorted(groups, key=int):
        counter = groups[group]
        total.update(counter)
        name = f"{group} {GROUPS.get(group, '')}".strip()
        lines.append(f"| {name} | " + " | ".join(str(counter[c]) for c in columns) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
    lines.append("")
    not_ok = sorted(
        ((case_id, problems(result)) for case_id, result in results.items()),
        key=lambda item: case_key(item[0]),
    )
    not_ok_lines = [
        f"- {case_id}: {problem}"
        + (" **(fails the run)**" if is_fatal(results[case_id]) else "")
        + (f": {detail}" if (detail := case_detail(run, results[case_id])) else "")
        for case_id, problem in not_ok
        if problem is not None
    ]
    not_ok_lines += [
        f"- {case_id}: missing from the report **(fails the run)**" for case_id in missing
    ]
    lines += ["Cases not OK:", "", *not_ok_lines] if not_ok_lines else ["Every case is OK."]
    lines.append("")
    fatal = sum(is_fatal(result) for result in results.values()) + len(missing)
    return lines, fatal


# Main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn Testsuite against anyws (see compliance/README.md)."
    )
    parser.add_argument("--wstest", required=True, help="the wstest script of autobahntestsuite")
    parser.add_argument(
        "--backend", action="append", choices=BACKENDS, help="repeatable; default: both"
    )
    parser.add_argument("--role", action="append", choices=ROLES, help="repeatable; default: both")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument(
        "--full",
        action="store_true",
        help="every case of the configs, all of 12.* and 13.* included (default: a sample "
        "of those two)",
    )
    selection.add_argument(
        "--cases",
        action="append",
        help="a case pattern like 1.* or 6.4.1, instead of the default selection (repeatable)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="runs at once (default: one per core, up to 4)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="bound on each run, in seconds (default: 600; with --full, 3600)",
    )
    parser.add_argument(
        "--reports", type=Path, default=HERE / "reports", help="default: compliance/reports"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # wstest runs in each run's directory: a relative path must not depend on that.
    wstest = shutil.which(args.wstest)
    if wstest is None:
        print(f"error: no wstest at {args.wstest}", file=sys.stderr)
        return 2
    args.wstest = str(Path(wstest).absolute())
    if args.timeout is None:
        args.timeout = 3600 if args.full else 600
    # None: the configs' own selection, every case.
    cases = None if args.full else args.cases or DEFAULT_CASES
    roles = args.role or list(ROLES)
    backends = args.backend or list(BACKENDS)
    reports: Path = args.reports.resolve()
    runs = [
        Run(role, backend, reports / f"{role}-{backend}") for role in roles for backend in backends
    ]

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    futures: list[concurrent.futures.Future[Run]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        try:
            futures += [pool.submit(execute, run, args.wstest, cases, args.timeout) for run in runs]
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C, SIGTERM or a bug: make every run stop and every process end.
            STOPPING.set()
            for future in futures:
                future.cancel()
            stop_all()
            raise
    elapsed = time.monotonic() - started

    if args.full:
        selection = "Full run: every case"
    elif args.cases:
        selection = f"Cases {', '.join(args.cases)}"
    else:
        selection = (
            "Default run: every case but 12.* and 13.*, of which a sample "
            f"(sub-cases {', '.join(map(str, SAMPLE_SUBCASES))} of each sub-group)"
        )
    lines = [
        "## Autobahn Testsuite results",
        "",
        f"{selection}; wall time {elapsed:.0f}s, up to {args.jobs} runs at a time: "
        + ", ".join(f"{run.role}-{run.backend} {run.duration:.0f}s" for run in runs)
        + f"; testees on Python {platform.python_version()}.",
        "",
    ]
    fatal = 0
    for run in runs:
        expected = expected_cases(args.wstest, run.config) if run.config else None
        run_lines, run_fatal = summarize(run, expected)
        lines += run_lines
        fatal += run_fatal
    broken = [run for run in runs if run.error]
    verdict = (
        f"FAILED: {fatal} failing or missing cases, {len(broken)} broken runs"
        if fatal or broken
        else "PASSED: no case FAILED, NON-STRICT, UNCLEAN or WRONG CODE, none missing"
    )
    lines.append(f"**{verdict}**")
    text = "\n".join(lines) + "\n"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "summary.md").write_text(text)
    print()
    print(text)
    print(f"reports, logs and this summary (summary.md) are in {reports}")
    return 1 if fatal or broken else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        sys.exit(130)
