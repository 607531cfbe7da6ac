"""The code in anyws' docstrings, which the API reference shows, runs on every backend.

Every literal block (``::``) of a docstring under ``anyws/`` is either byte for byte
the code between two markers (``# [name]`` ... ``# [/name]``) of a file under
``examples/api/``, which the tests below run against servers on port 0 or in-memory
streams, bounded by ``anyio.fail_after``, or a block that isn't Python, listed in
`NOT_PYTHON` with the reason (`test_docstring_blocks_are_examples`).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

import anyws
from anyws.sansio import Protocol, Side
from anyws.sansio.extensions import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tests.sansio.test_permessage_deflate import deliver, message, negotiate, parse_wire, take
from tests.test_client_server import echo
from tests.test_docs_snippets import alice
from tests.test_examples_content import EXAMPLES, TIMEOUT, http_get, load, uri


#: The example files, by path under examples/ (as `test_every_example_is_run` wants).
FILES = [
    "api/basic_auth.py",
    "api/connect.py",
    "api/connection_pair.py",
    "api/headers.py",
    "api/permessage_deflate.py",
    "api/reconnect.py",
    "api/route.py",
    "api/streams.py",
    "api/sync.py",
]

#: Docstring literal blocks that aren't Python, by file and start: the reason.
NOT_PYTHON = {
    ("anyws/exceptions.py", "WebSocketException\n├── "): "the exception tree, drawn",
    ("anyws/sansio/_headers.py", "1#element => "): "RFC 7230's list grammar (ABNF)",
    ("anyws/sansio/_http11.py", "chunked-body = "): "RFC 7230's chunked grammar (ABNF)",
}


# The guard -------------------------------------------------------------------------------


def literal_blocks(docstring: str) -> Iterator[str]:
    """The dedented code blocks of a reStructuredText docstring.

    Those are the literal blocks after a paragraph ending in ``::`` or a directive
    (``.. code-block:: python``), and doctest blocks (``>>>``), which no test runs
    here: they fail the guard like any block that isn't an example.
    """
    lines = docstring.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.lstrip().startswith(">>>"):  # a doctest block, which nothing here runs
            block = [line]
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            yield textwrap.dedent("\n".join(block))
            continue
        if not line.rstrip().endswith("::") and not re.match(r"\s*\.\. \w[\w-]*::", line):
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            block.append(lines[i])
            i += 1
        text = textwrap.dedent("\n".join(block)).strip("\n")
        if text:
            yield text


def docstring_blocks() -> Iterator[tuple[str, str]]:
    """``(path, block)`` for every literal block of every string statement in anyws/.

    String statements are the docstrings of modules, classes and functions, and those
    of attributes (a string after an assignment, which autodoc shows too).
    """
    # The package under test, which is the source tree or an installed distribution.
    package = Path(anyws.__file__).parent
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for block in literal_blocks(inspect.cleandoc(node.value.value)):
                    yield path.relative_to(package.parent).as_posix(), block


def regions() -> dict[str, str]:
    """The marked regions of the files in `FILES`, dedented, by ``path[name]``."""
    found = {}
    for relative in FILES:
        text = (EXAMPLES / relative).read_text()
        for match in re.finditer(
            r"^[ \t]*# \[([\w-]+)\]\n(.*?)^[ \t]*# \[/\1\]$", text, re.M | re.S
        ):
            found[f"{relative}[{match[1]}]"] = textwrap.dedent(match[2]).strip("\n")
    return found


def test_files_are_listed() -> None:
    assert (
        sorted(p.relative_to(EXAMPLES).as_posix() for p in (EXAMPLES / "api").glob("*.py")) == FILES
    )


def test_docstring_blocks_are_examples() -> None:
    """Each docstring block is an example region or listed in `NOT_PYTHON`; no region is unused.

    To show code in a docstring, put it between markers in a file under examples/api/,
    run it in this file, and copy the region into the docstring as it is (escape its
    backslashes: docstrings here aren't raw strings).
    """
    examples = regions()
    shown = set()
    not_python = set()
    untested = []
    for path, block in docstring_blocks():
        known = [key for key in NOT_PYTHON if key[0] == path and block.startswith(key[1])]
        if known:
            not_python.update(known)
            continue
        names = [name for name, region in examples.items() if region == block]
        if not names:
            untested.append(f"{path}:\n{textwrap.indent(block, '    ')}")
        shown.update(names)
    assert not untested, "docstring code that no example file holds:\n" + "\n".join(untested)
    assert not_python == set(NOT_PYTHON), "NOT_PYTHON lists blocks that are gone"
    assert shown == set(examples), f"regions no docstring shows: {set(examples) - shown}"


def test_the_guard_finds_blocks() -> None:
    """The extraction finds what the API reference renders as code, and only that."""
    docstring = (
        "Intro::\n\n    a = 1\n\n    b = 2\n\nText.\n\n.. code-block:: python\n\n    c\n\n"
        ">>> d\n1\n\nText: not code.\n"
    )
    assert list(literal_blocks(docstring)) == ["a = 1\n\nb = 2", "c", ">>> d\n1"]
    assert len(list(docstring_blocks())) == len(regions()) + len(NOT_PYTHON)


# Running the examples --------------------------------------------------------------------


@contextlib.contextmanager
def printed(
    monkeypatch: pytest.MonkeyPatch, module: object
) -> Iterator[MemoryObjectReceiveStream[str]]:
    """What the example module ``print`` s, line by line (a server prints its URI)."""
    send, receive = anyio.create_memory_object_stream[str](100)

    def fake_print(*args: object) -> None:
        send.send_nowait(" ".join(map(str, args)))

    monkeypatch.setattr(module, "print", fake_print, raising=False)
    with send, receive:
        yield receive


async def listening(lines: MemoryObjectReceiveStream[str]) -> str:
    line = await lines.receive()
    assert re.fullmatch(r"listening on ws://localhost:\d+/", line)
    return line.removeprefix("listening on ")


async def test_connect(capsys: pytest.CaptureFixture[str]) -> None:
    """anyws/__init__.py."""
    example = load("api/connect.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(echo, "127.0.0.1", 0) as server:
            await example.hello(uri(server))
    assert capsys.readouterr().out == "hello\n"


async def test_sync(capsys: pytest.CaptureFixture[str]) -> None:
    """anyws/sync/__init__.py."""
    example = load("api/sync.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(echo, "127.0.0.1", 0) as server:
            await anyio.to_thread.run_sync(example.hello, uri(server))
    assert capsys.readouterr().out == "hello\n"


async def test_basic_auth_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """anyws/_auth.py, basic_auth: the first example."""
    example = load("api/basic_auth.py")
    with printed(monkeypatch, example) as lines, anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(example.main, 0)
            server_uri = await listening(lines)
            with pytest.raises(anyws.InvalidStatus, match="HTTP 401"):
                async with anyws.connect(server_uri):
                    pass
            async with anyws.connect(server_uri, additional_headers=alice()) as websocket:
                assert await websocket.recv() == "hello alice"
            tg.cancel_scope.cancel()


async def test_basic_auth_combined() -> None:
    """anyws/_auth.py, basic_auth: the second example."""
    example = load("api/basic_auth.py")
    with anyio.fail_after(TIMEOUT):
        async with anyws.serve(
            example.handler, "127.0.0.1", 0, process_request=example.process_request
        ) as server:
            status, _, body = await http_get(server.port, "/healthz")
            assert (status, body) == ("HTTP/1.1 200 OK", "OK\n")
            status, headers, body = await http_get(server.port, "/")
            assert (status, body) == ("HTTP/1.1 401 Unauthorized", "Missing credentials\n")
            assert headers["www-authenticate"] == 'Basic realm="my server", charset="UTF-8"'
            async with anyws.connect(uri(server), additional_headers=alice()) as websocket:
                assert await websocket.recv() == "hello alice"


async def test_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """anyws/_reconnect.py, reconnect: after an error, the loop connects again at once."""
    example = load("api/reconnect.py")
    connections = 0

    async def handler(connection: anyws.ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await connection.send("one")
            await connection.close(1011, "oops")  # the client raises ConnectionClosedError
        else:
            await connection.send("two")
            await connection.wait_closed()

    with printed(monkeypatch, example) as lines, anyio.fail_after(TIMEOUT):
        async with (
            anyws.serve(handler, "127.0.0.1", 0) as server,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(example.main, uri(server))
            assert [await lines.receive(), await lines.receive()] == ["one", "two"]
            tg.cancel_scope.cancel()
    assert connections == 2


async def test_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """anyws/_routing.py, route."""
    example = load("api/route.py")
    with printed(monkeypatch, example) as lines, anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(example.main, 0)
            server_uri = await listening(lines)
            for path, greeting in [
                ("chat", "welcome to the chat"),
                ("rooms/red", "welcome to red"),
            ]:
                async with anyws.connect(server_uri + path) as websocket:
                    assert await websocket.recv() == greeting
            with pytest.raises(anyws.InvalidStatus, match="HTTP 404"):
                async with anyws.connect(server_uri + "nowhere"):
                    pass
            tg.cancel_scope.cancel()


def test_headers() -> None:
    """anyws/sansio/_headers.py, Headers."""
    headers = load("api/headers.py").build()
    assert list(headers.items()) == [("Host", "example.com"), ("Upgrade", "websocket")]
    assert headers["host"] == "example.com"


def test_permessage_deflate() -> None:
    """anyws/sansio/extensions/_permessage_deflate.py: one message sent uncompressed."""
    example = load("api/permessage_deflate.py")
    deflate, server_deflate = negotiate(
        ClientPerMessageDeflateFactory(), ServerPerMessageDeflateFactory()
    )
    client = Protocol(Side.CLIENT, extensions=[deflate])
    server = Protocol(Side.SERVER, extensions=[server_deflate])
    data = b"abc" * 100
    example.send_uncompressed(client, deflate, data)
    (frame,) = parse_wire(wire := take(client))
    assert (frame.rsv1, frame.payload) == (False, data)
    assert message(deliver(wire, server)) == data
    client.send_binary(data)  # the next message is compressed
    (frame,) = parse_wire(take(client))
    assert frame.rsv1
    # When sending raises, the flag is reset all the same.
    client.send_close(1000)
    with pytest.raises(anyws.InvalidState):
        example.send_uncompressed(client, deflate, data)
    assert deflate.skip_next_message is False


@pytest.mark.parametrize("function", ["pair", "handler"])
async def test_connection_pair(function: str) -> None:
    """anyws/testing/_pair.py, connection_pair: both examples assert what they show."""
    with anyio.fail_after(TIMEOUT):
        await getattr(load("api/connection_pair.py"), function)()


@pytest.mark.parametrize(
    "function", ["memory", "lockstep", "swallow", "paused", "trickle", "delay_eof", "reset"]
)
async def test_streams(function: str) -> None:
    """anyws/testing/_streams.py: the examples assert what they show."""
    with anyio.fail_after(TIMEOUT):
        await getattr(load("api/streams.py"), function)()
