"""Replay the fuzzer's regression inputs (fuzzing/regressions/TARGET/*) through its targets.

``nox -s fuzz`` runs fuzzing/targets.py under atheris; an input that once broke a
target is kept in fuzzing/regressions/ (with the seeds), and replayed here on every
run, without atheris.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


FUZZING = Path(__file__).parent.parent / "fuzzing"


def _load_targets() -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("anyws_fuzz_targets", FUZZING / "targets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TARGETS  # type: ignore[no-any-return]


TARGETS = _load_targets()
INPUTS = sorted((FUZZING / "regressions").glob("*/*"))


def test_every_target_has_regression_inputs() -> None:
    assert {path.parent.name for path in INPUTS} == set(TARGETS)


@pytest.mark.parametrize("path", INPUTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_regression_input(path: Path) -> None:
    target = TARGETS[path.parent.name]
    target(path.read_bytes())  # type: ignore[operator]
