"""The sans-I/O core imports only the standard library: no I/O, no clock, no event loop.

``anyws/sansio/`` must run anywhere bytes can be fed to it (an integrator's own loop, a
fuzzer, a test). So every module there (``.py`` and ``.pyi``) may import only:

- the standard library, except the modules in `FORBIDDEN`, which do I/O, read a clock
  or run tasks;
- ``anyws.sansio`` itself, and ``anyws.exceptions``, which both layers share.

``anyws/exceptions.py`` is held to the same rule, since the core imports it.

The check reads the source with `ast`, so it also sees imports under ``if TYPE_CHECKING:``
and inside functions, and it resolves relative imports. Dynamic imports
(``__import__``, ``importlib.import_module``) are refused outright: they can't be checked.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import anyws
import anyws.sansio


#: Standard-library modules the core must not import, even though they are standard.
FORBIDDEN = frozenset(
    {
        "_thread",
        "anyio",
        "asyncio",
        "concurrent",
        "multiprocessing",
        "select",
        "selectors",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "time",
        "trio",
    }
)

#: First-party modules the core may import (and their submodules, for the first).
ALLOWED_FIRST_PARTY = ("anyws.sansio", "anyws.exceptions")

SANSIO_DIR = Path(anyws.sansio.__file__).parent
PACKAGE_DIR = Path(anyws.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _core_modules() -> list[Path]:
    paths = sorted(
        path
        for pattern in ("*.py", "*.pyi")
        for path in SANSIO_DIR.rglob(pattern)
        if "__pycache__" not in path.parts
    )
    return [*paths, PACKAGE_DIR / "exceptions.py"]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """Return the absolute name of the module ``node`` imports from."""
    if node.level == 0:
        assert node.module is not None
        return node.module
    package = module if is_package else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _is_allowed_first_party(name: str) -> bool:
    return any(name == allowed or name.startswith(f"{allowed}.") for allowed in ALLOWED_FIRST_PARTY)


def _check_absolute(name: str) -> str | None:
    """Return why importing ``name`` breaks the rule, or None if it may be imported."""
    top = name.partition(".")[0]
    if top == "anyws":
        return None if _is_allowed_first_party(name) else "outside anyws.sansio"
    if top in FORBIDDEN:
        return "I/O, a clock or concurrency"
    if top not in sys.stdlib_module_names:
        return "not in the standard library"
    return None


def _violations(source: str, module: str, *, is_package: bool, label: str) -> Iterator[str]:
    """Yield one message per import in ``source`` (module ``module``) that breaks the rule."""
    for node in ast.walk(ast.parse(source, filename=label)):
        where = f"{label}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if reason := _check_absolute(alias.name):
                    yield f"{where}: import {alias.name} ({reason})"
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, is_package)
            if node.module == "__future__":
                continue
            reason = _check_absolute(source)
            # ``from .. import exceptions``: each name may be an allowed submodule.
            if reason and all(
                _is_allowed_first_party(f"{source}.{alias.name}") for alias in node.names
            ):
                reason = None
            if reason:
                yield f"{where}: from {source} import ... ({reason})"
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in {"__import__", "import_module"}:
                yield f"{where}: dynamic import {name}() can't be checked"


def _file_violations(path: Path) -> list[str]:
    return list(
        _violations(
            path.read_text(encoding="utf-8"),
            _module_name(path),
            is_package=path.stem == "__init__",
            label=str(path.relative_to(PACKAGE_DIR.parent)),
        )
    )


def test_the_core_has_modules() -> None:
    """Guard against a vacuous pass: the scan finds the core's modules."""
    names = {path.name for path in _core_modules()}
    assert "__init__.py" in names
    assert len(names) > 2


@pytest.mark.parametrize(
    "path", _core_modules(), ids=lambda path: str(path.relative_to(PACKAGE_DIR.parent))
)
def test_core_module_imports_only_the_standard_library(path: Path) -> None:
    violations = _file_violations(path)
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os, struct, zlib", []),
        ("from collections.abc import Sequence", []),
        ("from __future__ import annotations", []),
        ("from . import _frames\nfrom ._mask import apply_mask", []),
        ("from ..exceptions import ProtocolError\nfrom .. import exceptions", []),
        ("from anyws.sansio._frames import Frame", []),
        ("import time", ["import time"]),
        ("from time import monotonic", ["from time import"]),
        ("import anyio", ["import anyio"]),
        ("from trio import lowlevel", ["from trio import"]),
        ("import asyncio.events", ["import asyncio.events"]),
        ("import socket, ssl, select, threading", ["socket", "ssl", "select", "threading"]),
        ("import h11", ["import h11"]),
        ("from .. import _connection", ["from anyws import"]),
        ("from .._connection import Connection", ["from anyws._connection import"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import anyio", ["anyio"]),
        ("def f():\n    import trio", ["trio"]),
        ("import importlib\nimportlib.import_module('trio')", ["dynamic import"]),
    ],
)
def test_the_checker_itself(source: str, expected: list[str]) -> None:
    """The rule catches what it should, and only that."""
    found = list(_violations(source, "anyws.sansio._example", is_package=False, label="example"))
    assert len(found) == len(expected), found
    for message, fragment in zip(found, expected, strict=True):
        assert fragment in message
