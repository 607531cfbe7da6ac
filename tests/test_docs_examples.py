"""The examples of the documentation, run as the docs tell readers to run them.

Every ``.py`` file under ``examples/`` is a program that the docs include or link to;
these tests run each one as a subprocess, on asyncio and on trio, and check what it
prints. The conventions that make that possible are in examples/README.md: a server
example takes ``--backend`` and ``--port`` (0 here) and prints the ``ws://`` URI it
listens on; a client example takes ``--backend`` and the URI.

`test_every_example_is_run` fails when an example file is named by no test, so that no
example can rot unseen, and `test_docs_show_no_inline_python` when a page shows Python
other than by including an example file. Tests for other examples (in this file or
another one) use `start_server` and `run_example`. `test_readme_code` runs README.md's
program.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# docs/topics/concurrency.md -------------------------------------------------------------


def test_connection_tasks_program(backend: str) -> None:
    output = run_example("connection_tasks.py", backend=backend)
    assert output.splitlines() == [
        "['echo hello', 'update 0', 'update 1', 'update 2']",
        "(\"unexpected 'update 0'\", 1011)",
    ]


def test_anyio_streams_program(backend: str) -> None:
    output = run_example("anyio_streams.py", backend=backend)
    assert output == "['/jobs: update 0', '/jobs: update 1', '/jobs: update 2']\n"


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


# No untested code in the docs -------------------------------------------------------------

#: A fenced code block of Python: ```python, ```py, ```python3, ```pycon, or a MyST
#: ```{code-block} python / ```{code} python / ```{sourcecode} python (also with ~~~ or
#: more backticks, indented in a list item, and as the reStructuredText directive).
PYTHON_FENCE = re.compile(
    r"^[ \t>]*(?:(?:`{3,}|~{3,})[ \t]*(?:\{(?:code-block|code|sourcecode)\}[ \t]*)?"
    r"|\.\.[ \t]+(?:code-block|code|sourcecode)::[ \t]*)"
    r"(?:python3?|py|pycon|ipython3?)\b",
    re.IGNORECASE | re.MULTILINE,
)

#: The argument of a ``{literalinclude}`` directive.
LITERALINCLUDE = re.compile(r"^[ \t>]*(?:`{3,}|~{3,})\{literalinclude\}[ \t]+(\S+)", re.MULTILINE)


def test_python_fence_pattern() -> None:
    """The guard below recognises every way of writing a Python block, and only those."""
    blocks = [
        "```python\n",
        "```py\n",
        "  ```python3\n",
        "~~~pycon\n",
        "````{code-block} python\n",
        "```{code} py\n",
        ".. code-block:: python\n",
    ]
    assert [bool(PYTHON_FENCE.search(block)) for block in blocks] == [True] * len(blocks)
    others = ["```sh\n", "```console\n", "```{literalinclude} ../examples/x.py\n", "```pyproject\n"]
    assert [bool(PYTHON_FENCE.search(block)) for block in others] == [False] * len(others)


def test_docs_show_no_inline_python() -> None:
    """No page under docs/ shows Python except by including an example file.

    Code copied into a page can't be run by a test and rots; a file under examples/ is run
    (`test_every_example_is_run`). Put the code in a file there and include it with
    ```` ```{literalinclude} ../examples/FILE.py ```` ````, with ``:pyobject:`` or
    ``:start-after:``/``:end-before:`` to show a part.
    """
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert pages, "no docs pages found"
    inline = [
        f"{page.relative_to(ROOT)}:{page.read_text()[: match.start()].count(chr(10)) + 1}"
        for page in pages
        for match in PYTHON_FENCE.finditer(page.read_text())
    ]
    assert not inline, f"Python blocks that aren't literalinclude: {inline}"


def test_docs_include_examples_that_exist() -> None:
    """Every ``.py`` file a page includes is under examples/, where tests run it."""
    included = [
        (page, (page.parent / target).resolve())
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for target in LITERALINCLUDE.findall(page.read_text())
    ]
    assert included, "no literalinclude found"
    wrong = [
        f"{page.relative_to(ROOT)}: {target}"
        for page, target in included
        if target.suffix == ".py" and not (target.is_file() and target.is_relative_to(EXAMPLES))
    ]
    assert not wrong, f"included Python that isn't an example file: {wrong}"


# README.md --------------------------------------------------------------------------------


def readme_code() -> str:
    """The Python block of README.md ("In code"), which has to stay one."""
    blocks = re.findall(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M)
    assert len(blocks) == 1, f"README.md has {len(blocks)} Python blocks; this test runs one"
    return str(blocks[0])


def test_readme_code(backend: str, tmp_path: Path) -> None:
    """README's program runs as shown, on asyncio, and on trio with its last line swapped."""
    code = readme_code()
    if backend == "trio":
        asyncio_run = 'anyio.run(main)  # asyncio\n# anyio.run(main, backend="trio")'
        assert asyncio_run in code, "README's last lines changed: update this test"
        code = code.replace(asyncio_run, 'anyio.run(main, backend="trio")')
    script = tmp_path / "readme.py"
    script.write_text(code)
    process = Process(script=str(script))
    try:
        process.close_stdin()
        assert process.wait() == 0, process.output()
        assert "".join(process.stdout) == "hello\n"
    finally:
        process.cleanup()
