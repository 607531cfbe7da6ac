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
import importlib
import inspect
import subprocess
import sys
import textwrap
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


# The anyio layer over the core ------------------------------------------------------------

#: The core's modules that the rest of anyws may import from, and what each may give it:
#: the integrator API, the extensions, and the surface declared for anyws' own I/O layer.
DECLARED_SURFACE = ("anyws.sansio", "anyws.sansio.extensions", "anyws.sansio._surface")


def _io_layer_modules() -> list[Path]:
    """Every module of anyws outside the core (``anyws/sansio/``, ``anyws/exceptions.py``)."""
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*.py")
        if SANSIO_DIR not in path.parents
        and path != PACKAGE_DIR / "exceptions.py"
        and "__pycache__" not in path.parts
    )


def _core_imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Yield (line, module, names) for each import of the core in ``path``."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("anyws.sansio"):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            source = _resolve(node, module, path.stem == "__init__")
            names = [alias.name for alias in node.names]
            if source == "anyws":  # ``from .. import sansio``
                for name in names:
                    if name == "sansio":
                        yield node.lineno, "anyws.sansio", []
            elif source.startswith("anyws.sansio"):
                yield node.lineno, source, names


def test_the_io_layer_has_modules() -> None:
    """Guard against a vacuous pass: the scan finds the anyio layer and its core imports."""
    paths = _io_layer_modules()
    assert PACKAGE_DIR / "_connection.py" in paths
    assert any(list(_core_imports(path)) for path in paths)


@pytest.mark.parametrize(
    "path", _io_layer_modules(), ids=lambda path: str(path.relative_to(PACKAGE_DIR.parent))
)
def test_the_io_layer_uses_the_declared_core_surface(path: Path) -> None:
    """Outside the core, anyws imports only the core's declared surface.

    That is `anyws.sansio` and `anyws.sansio.extensions` (their ``__all__``) and
    ``anyws.sansio._surface``, never another of the core's private modules.
    """
    violations = []
    for line, source, names in _core_imports(path):
        where = f"{path.relative_to(PACKAGE_DIR.parent)}:{line}"
        if source not in DECLARED_SURFACE:
            violations.append(f"{where}: imports {source}, not a declared surface of the core")
            continue
        declared = set(importlib.import_module(source).__all__)
        undeclared = sorted(set(names) - declared)
        if undeclared:
            violations.append(f"{where}: {undeclared} aren't in {source}.__all__")
    assert not violations, "\n".join(violations)


def test_the_core_imports_without_anyio() -> None:
    """``import anyws.sansio`` works where anyio can't be imported: the core stands alone.

    ``import anyws`` works too (its anyio layer is imported on first use), and using a
    name of that layer then raises `ImportError`.
    """
    code = textwrap.dedent(
        """
        import sys
        for name in ("anyio", "sniffio", "trio"):
            sys.modules[name] = None  # import anyio -> ImportError
        import anyws.sansio
        import anyws.sansio.extensions
        import anyws.exceptions
        import anyws
        protocol = anyws.sansio.ClientProtocol(anyws.sansio.parse_uri("ws://example.com/"))
        protocol.send_request(protocol.connect())
        assert protocol.data_to_send()[0].startswith(b"GET / HTTP/1.1")
        assert anyws.CloseCode.NORMAL_CLOSURE == 1000
        try:
            anyws.connect
        except ImportError:
            pass
        else:
            raise AssertionError("anyws.connect imported without anyio")
        loaded = sorted(name for name, module in sys.modules.items() if module is not None)
        print(" ".join(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "anyws.sansio" in loaded
    assert not [name for name in loaded if name.split(".")[0] in {"anyio", "trio", "sniffio"}]


# Private members stay private -------------------------------------------------------------

#: Expressions whose private attributes a module may use: its own instance and class.
OWN = frozenset({"self", "cls"})


def _private_names_defined(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, methods, attributes, slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {name for name in names if name.startswith("_")}


def _interface_names(tree: ast.AST) -> set[str]:
    """The private names that the `typing.Protocol` classes of a module declare.

    Such a class is an interface between modules (``anyws._engine.Link``: what the
    engine, the inbox and the pings call on their connection); its names are shared.
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(base, ast.Name) and base.id == "Protocol")
            or (isinstance(base, ast.Attribute) and base.attr == "Protocol")
            for base in node.bases
        ):
            names |= {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("_")
            }
    return names


def _foreign_modules(tree: ast.AST) -> set[str]:
    """The names bound by ``import x`` of modules that aren't anyws' (``zlib._Compress``)."""
    return {
        (alias.asname or alias.name).partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if not alias.name.startswith("anyws")
    }


def _foreign_private_uses(
    source: str, label: str, interfaces: frozenset[str] = frozenset()
) -> Iterator[str]:
    tree = ast.parse(source, filename=label)
    own = _private_names_defined(tree) | interfaces
    foreign_modules = _foreign_modules(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.endswith("_"):
            continue  # public, dunder, or an enum's sunder name (``_value2member_map_``)
        value = node.value
        if isinstance(value, ast.Name) and (value.id in OWN or value.id in foreign_modules):
            continue
        if name in own:
            continue
        yield f"{label}:{node.lineno}: .{name}"


def _anyws_modules() -> list[Path]:
    return sorted(path for path in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in path.parts)


#: The private names that anyws' interfaces between modules declare.
INTERFACES = frozenset(
    name
    for path in _anyws_modules()
    for name in _interface_names(ast.parse(path.read_text(encoding="utf-8")))
)


@pytest.mark.parametrize(
    "path", _anyws_modules(), ids=lambda path: str(path.relative_to(PACKAGE_DIR.parent))
)
def test_no_module_reaches_into_another_modules_private_members(path: Path) -> None:
    """A module uses ``obj._name`` only for names it defines itself.

    What another module needs gets an internal name (for example the functions at the
    end of ``anyws/_connection.py``), so that a private member can change without
    breaking a module that isn't in view.
    """
    label = str(path.relative_to(PACKAGE_DIR.parent))
    source = path.read_text(encoding="utf-8")
    violations = list(_foreign_private_uses(source, label, INTERFACES))
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("self._x\ncls._y", []),
        ("class A:\n    def _f(self): ...\nA()._f()", []),
        ("other._private", ["._private"]),
        ("x.__class__\nx.__dict__", []),
        ("connection._engine.transport_exc", ["._engine"]),
        ("__slots__ = ('_engine',)\nconnection._engine", []),
        ("import zlib\nzlib._Compress", []),
        ("from anyws import _connection\n_connection._Running", ["._Running"]),
        ("CloseCode._value2member_map_", []),
        ("class Link(Protocol):\n    def _received(self): ...\nx._received", []),
    ],
)
def test_the_private_member_checker_itself(source: str, expected: list[str]) -> None:
    interfaces = _interface_names(ast.parse(source))
    found = list(_foreign_private_uses(source, "example", frozenset(interfaces)))
    assert len(found) == len(expected), found
    for message, fragment in zip(found, expected, strict=True):
        assert message.endswith(fragment)


# One definition of the connection options' defaults --------------------------------------


@pytest.mark.parametrize(
    "callable_",
    [
        anyws.connect,
        anyws.serve,
        anyws.Connection,
        anyws.ClientConnection,
        anyws.ServerConnection,
    ],
    ids=lambda callable_: callable_.__name__,
)
def test_signatures_repeat_the_option_defaults(callable_: object) -> None:
    """Each signature that takes the connection options has `DEFAULTS`' defaults.

    The signatures spell the values out, for their documentation; `DEFAULTS` is the
    definition they must agree with.
    """
    from anyws._options import DEFAULTS

    parameters = inspect.signature(callable_).parameters  # type: ignore[arg-type]
    expected = DEFAULTS.as_kwargs()
    found = {name: parameters[name].default for name in expected}
    assert found == expected
