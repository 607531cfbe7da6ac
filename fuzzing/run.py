"""Run one fuzz target of `targets` under atheris, coverage-guided, for a fixed time.

    python fuzzing/run.py TARGET [libFuzzer options...]

``nox -s fuzz`` runs every target for a fixed time (``-max_total_time``). A crash
leaves its input in ``fuzzing/crashes/TARGET/``: copy it to
``fuzzing/regressions/TARGET/`` and tests/test_fuzz_regressions.py replays it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris


with atheris.instrument_imports(include=["anyws"]):
    sys.path.insert(0, str(Path(__file__).parent))
    from targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    crashes = Path(__file__).parent / "crashes" / sys.argv[1]
    crashes.mkdir(parents=True, exist_ok=True)
    # libFuzzer adds what it finds to the first corpus directory (git ignores it);
    # the regressions seed it.
    corpus = Path(__file__).parent / "corpus" / sys.argv[1]
    corpus.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], f"-artifact_prefix={crashes}/", *sys.argv[2:], str(corpus)]
    seeds = Path(__file__).parent / "regressions" / sys.argv[1]
    if seeds.is_dir():
        argv.append(str(seeds))
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
