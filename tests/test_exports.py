"""Each public module's ``__all__`` is complete, importable, sorted and unique.

Public modules are `PUBLIC_MODULES` plus every module or package under ``anyws`` whose
dotted name has no component starting with an underscore. The checks are generic, so
they keep holding as names are added.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import anyws


PUBLIC_MODULES = ("anyws", "anyws.sansio", "anyws.exceptions")


def _public_modules() -> list[str]:
    names = set(PUBLIC_MODULES)
    for info in pkgutil.walk_packages(anyws.__path__, prefix="anyws."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.add(info.name)
    return sorted(names)


def _isort_key(name: str) -> tuple[int, list[str | int]]:
    """Sort key of ruff's RUF022 ("isort-style"), so that this test and the linter agree.

    SCREAMING_SNAKE_CASE constants come first, then CamelCase classes, then everything
    else; within each group, a natural sort (digit runs compare as numbers).
    """
    if len(name) > 1 and name.isupper():
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    chunks: list[str | int] = [
        int(chunk) if chunk.isdigit() else chunk for chunk in re.split(r"(\d+)", name)
    ]
    return category, chunks


def _defined_public_names(module: ModuleType) -> set[str]:
    """Public classes and functions that anyws defines and ``module`` offers."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").partition(".")[0] == "anyws"
    }


@pytest.fixture(params=_public_modules())
def module(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def test_isort_key_matches_ruff() -> None:
    names = ["apply_mask", "Frame", "SEND_EOF", "Close", "OP_2", "OP_10", "X", "connect"]
    expected = ["OP_2", "OP_10", "SEND_EOF", "Close", "Frame", "X", "apply_mask", "connect"]
    assert sorted(names, key=_isort_key) == expected


def test_all_is_a_sequence_of_strings(module: ModuleType) -> None:
    exported = getattr(module, "__all__", [])
    assert isinstance(exported, (list, tuple))
    assert all(isinstance(name, str) for name in exported)


def test_all_names_exist(module: ModuleType) -> None:
    missing = [name for name in getattr(module, "__all__", []) if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ lists names it doesn't have: {missing}"


def test_all_is_unique(module: ModuleType) -> None:
    exported = list(getattr(module, "__all__", []))
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"{module.__name__}.__all__ repeats {duplicates}"


def test_all_is_sorted(module: ModuleType) -> None:
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported, key=_isort_key), (
        f"{module.__name__}.__all__ is not in ruff's isort-style order (RUF022)"
    )


def test_all_names_every_public_definition(module: ModuleType) -> None:
    """A public class or function of anyws that a public module offers is in its ``__all__``.

    A module without ``__all__`` passes only while it offers no such name (a stub).
    """
    offered = _defined_public_names(module)
    if not hasattr(module, "__all__"):
        assert not offered, f"{module.__name__} offers {sorted(offered)} but has no __all__"
        return
    unlisted = sorted(offered - set(module.__all__))
    assert not unlisted, f"{module.__name__} offers {unlisted} without listing them in __all__"
