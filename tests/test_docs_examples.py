"""The examples of the documentation, run as the docs tell readers to run them.

Every ``.py`` file under ``examples/`` is a program that the docs include or link to;
these tests run each one as a subprocess, on asyncio and on trio, and check what it
prints. The conventions that make that possible are in examples/README.md: a server
example takes ``--backend`` and ``--port`` (0 here) and prints the ``ws://`` URI it
listens on; a client example takes ``--backend`` and the URI.

`test_every_example_is_run` fails when an example file is named by no test, so that no
example can rot unseen. Tests for other examples (in this file or another one) use
`start_server` and `run_example`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.test_main import BACKENDS, ROOT, Process


EXAMPLES = ROOT / "examples"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


def example(path: str, *args: str) -> Process:
    """Start ``python examples/PATH ARGS``; the caller must `Process.cleanup` it."""
    script = EXAMPLES / path
    assert script.is_file(), script
    return Process(*args, script=str(script))


@contextmanager
def start_server(path: str, *args: str, backend: str) -> Iterator[tuple[Process, str]]:
    """Run a server example on a free port until the block ends; give it and its URI.

    The URI is the first ``ws://``, ``wss://``, ``http://`` or ``https://`` URL printed.
    """
    process = example(path, "--backend", backend, "--port", "0", *args)
    try:
        uri = process.expect(r"((?:ws|wss|http|https)://\S+)").group(1)
        yield process, uri
    finally:
        process.cleanup()


def run_example(path: str, *args: str, backend: str, stdin: str = "") -> str:
    """Run an example to its end (bounded), check that it succeeds; return its stdout."""
    process = example(path, "--backend", backend, *args)
    try:
        if stdin:
            process.write(stdin)
        process.close_stdin()
        assert process.wait() == 0, process.output()
        return "".join(process.stdout)
    finally:
        process.cleanup()


# docs/index.md ---------------------------------------------------------------------------


def test_hello(backend: str) -> None:
    """The landing page's program: a server and a client in one process."""
    assert run_example("hello.py", backend=backend) == "Hello, world!\n"


# docs/getting-started.md ----------------------------------------------------------------


def test_getting_started(backend: str) -> None:
    """The echo server and client of Getting started talk, on each backend."""
    with start_server("getting_started/server.py", backend=backend) as (server, uri):
        assert uri.startswith("ws://127.0.0.1:")
        output = run_example("getting_started/client.py", uri, backend=backend)
        assert output == "received: Hello, world!\n"
        assert server.popen.poll() is None  # the server serves on after a client left


# Every example is run ---------------------------------------------------------------------


def test_every_example_is_run() -> None:
    """Each ``examples/**/*.py`` is named, by its path under examples/, in some test file."""
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    examples = sorted(
        path.relative_to(EXAMPLES).as_posix()
        for path in EXAMPLES.rglob("*.py")
        if path.name != "__init__.py"
    )
    assert examples, "no examples found"
    missing = [path for path in examples if f'"{path}"' not in tests]
    assert not missing, f"examples that no test runs: {missing}"
