"""Shared fixtures: the anyio backend matrix, virtual time, TLS contexts and the ``MS`` unit.

Backends
    Every async test runs on each backend that imports, through anyio's pytest plugin
    (``anyio_mode = "auto"`` in pyproject.toml), with these ids:

    - ``asyncio``: asyncio in debug mode, which reports never-awaited coroutines and
      callbacks that block the loop;
    - ``asyncio+uvloop``: asyncio on uvloop, when uvloop imports;
    - ``trio``: when trio imports.

    A missing optional backend is left out of the matrix, so the suite runs without trio
    (the ``tests_asyncio_only`` nox session checks exactly that). To make sure that a
    broken environment doesn't silently shrink the matrix, set
    ``ANYWS_TESTS_REQUIRE_BACKENDS`` to a comma-separated list of ids: the run then stops
    at start-up if one of them isn't available. The nox sessions set it.

Virtual time (keepalive and timeout tests)
    Mark a test, a class or a module with ``@pytest.mark.autojump`` and it runs on trio
    only, under ``trio.testing.MockClock(autojump_threshold=0)``: whenever every task is
    blocked, the clock jumps to the next deadline, so ``await anyio.sleep(3600)`` returns
    at once and timeouts fire deterministically. Each test gets a fresh clock; the
    ``mock_clock`` fixture returns it, to read ``mock_clock.current_time()`` or to
    ``jump()`` by hand. Without trio such tests are skipped, with the reason shown.
    (anyio passes the ``clock`` backend option on to trio as it starts the run.)::

        @pytest.mark.autojump
        async def test_ping_timeout(mock_clock):
            with anyio.fail_after(30):
                await anyio.sleep(20)  # no wall time passes
            assert mock_clock.current_time() >= 20

    Synchronise with ``await anyio.wait_all_tasks_blocked()`` rather than with sleeps.

Real time (asyncio)
    Tests that must wait for real time express durations in ``MS``, one millisecond
    scaled by ``ANYWS_TESTS_TIMEOUT_FACTOR`` (default 1) for slow machines::

        from tests.conftest import MS

        with anyio.fail_after(100 * MS): ...

TLS
    Session-scoped trustme fixtures: ``ca``, ``server_ssl_context`` (a certificate for
    ``localhost``, ``127.0.0.1`` and ``::1``) and ``client_ssl_context`` (trusts ``ca``).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest


if TYPE_CHECKING:
    import trustme

try:
    import trio
    import trio.testing
except ImportError:  # the tests_asyncio_only session runs without trio
    trio = None  # type: ignore[assignment]

try:
    import uvloop
except ImportError:  # not on Windows nor PyPy, or not installed
    uvloop = None  # type: ignore[assignment]


_CONNECTION_NAME = re.compile(r"^[0-9a-f]{8} (?=[<>=%!x-] )")


def unnamed(message: str) -> str:
    """A debug trace line without the connection's name (see anyws/_logging.py)."""
    return _CONNECTION_NAME.sub("", message)


#: One millisecond of real time, scaled for slow machines by ``ANYWS_TESTS_TIMEOUT_FACTOR``.
MS = 0.001 * float(os.environ.get("ANYWS_TESTS_TIMEOUT_FACTOR", "1"))

Backend = tuple[str, dict[str, Any]]

#: Backend id -> factory of the ``anyio_backend`` value, for the backends that import.
#: Factories, not values, so that each use gets fresh options (a fresh clock).
BACKENDS: dict[str, Callable[[], Backend]] = {"asyncio": lambda: ("asyncio", {"debug": True})}
if uvloop is not None:
    # anyio takes a loop factory; ``use_uvloop=True`` is the older spelling of the same.
    BACKENDS["asyncio+uvloop"] = lambda: ("asyncio", {"loop_factory": uvloop.new_event_loop})
if trio is not None:
    BACKENDS["trio"] = lambda: ("trio", {})

AUTOJUMP = "trio+autojump"


def _autojump_backend() -> Backend:
    assert trio is not None
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def pytest_report_header(config: pytest.Config) -> str:
    import anyws

    return f"anyws {anyws.__version__} from {Path(anyws.__file__).parent}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "autojump: run on trio only, under a MockClock that jumps whenever all tasks are "
        "blocked (virtual time); see tests/conftest.py",
    )
    required = [
        name.strip()
        for name in os.environ.get("ANYWS_TESTS_REQUIRE_BACKENDS", "").split(",")
        if name.strip()
    ]
    if os.environ.get("ANYWS_TESTS_INSTALLED"):
        # nox -s dist: the tests must exercise the installed distribution, not a
        # source tree that happens to be on sys.path.
        import anyws

        package = Path(anyws.__file__).resolve()
        if Path(config.rootpath).resolve() in package.parents:
            raise pytest.UsageError(f"ANYWS_TESTS_INSTALLED is set, but anyws is {package}")
    if missing := [name for name in required if name not in BACKENDS]:
        raise pytest.UsageError(
            f"ANYWS_TESTS_REQUIRE_BACKENDS asks for {', '.join(missing)}, which didn't import "
            f"here (available: {', '.join(BACKENDS)})"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Route @pytest.mark.autojump tests to the virtual-time backend. This has to be a
    # parametrize *mark*, added before pytest's own hooks run: pytest then applies it and
    # leaves out the ``params`` of the ``anyio_backend`` fixture below. A test that
    # parametrizes ``anyio_backend`` itself keeps its own choice.
    if "anyio_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("autojump") is None:
        return
    if any(
        "anyio_backend" in _argnames(mark)
        for mark in metafunc.definition.iter_markers("parametrize")
    ):
        return
    marks = () if trio is not None else pytest.mark.skip(reason="virtual time needs trio")
    metafunc.definition.add_marker(
        pytest.mark.parametrize(
            "anyio_backend",
            [pytest.param(AUTOJUMP, id=AUTOJUMP, marks=marks)],
            indirect=True,
            scope="function",  # a fresh clock for every test
        )
    )


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs["argnames"]
    if isinstance(names, str):
        names = names.split(",")
    return [name.strip() for name in names]


@pytest.fixture(scope="module", params=list(BACKENDS), ids=list(BACKENDS))
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    """The backend the current async test runs on; see the module docstring."""
    name: str = request.param
    if name == AUTOJUMP:
        return _autojump_backend()
    return BACKENDS[name]()


@pytest.fixture
def mock_clock(anyio_backend: Backend) -> Any:
    """The ``trio.testing.MockClock`` of an ``@pytest.mark.autojump`` test."""
    clock = anyio_backend[1].get("clock")
    if clock is None:
        pytest.fail("the mock_clock fixture needs @pytest.mark.autojump")
    return clock


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for localhost, 127.0.0.1 and ::1, signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` (and nothing else)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session", autouse=True)
def _no_proxy_environment() -> Iterator[None]:
    """Keep the machine's proxy variables out of the tests.

    `anyws.connect` reads ``http_proxy``, ``https_proxy``, ``all_proxy``... by default
    (``proxy=True``): with one set, connections to 127.0.0.1 would go to that proxy.
    Tests of that behaviour set the variables themselves (tests/test_proxy.py).
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in list(os.environ):
            if name.lower().endswith("_proxy"):
                monkeypatch.delenv(name)
        yield
