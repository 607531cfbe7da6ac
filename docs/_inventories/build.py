"""Write the intersphinx inventories (``*.inv``) of this folder, from the table below.

The docs link to Python, anyio and trio, whose inventories live on their sites; the
build must not fetch them (CI reaches only PyPI, and a build should not depend on three
web sites). So the few names these docs refer to are listed here, with the page of each
project's documentation that describes them, and this script writes an inventory in
Sphinx's format (version 2) for each project. The ``*.inv`` files are committed: run
``python docs/_inventories/build.py`` after changing the table, and commit both
(``nox -s docs`` runs it with ``--check`` first, and fails if they differ).

A name missing here shows up as a nitpicky warning such as
``py:class reference target not found: anyio.abc.ByteStream``: add it under its
project with its role (``class``, ``exception``, ``function``, ``method``,
``attribute``, ``data``, ``module``) and its page, relative to the URL of
``intersphinx_mapping`` in conf.py.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path


HERE = Path(__file__).parent

#: project -> (version, {page: [(role, name), ...]}); the anchor of each name is the name
#: itself (``module-NAME`` for a module), as Sphinx writes it.
INVENTORIES: dict[str, tuple[str, dict[str, list[tuple[str, str]]]]] = {
    "Python": (
        "3.13",
        {
            "library/stdtypes.html": [
                ("class", "str"),
                ("class", "bytes"),
                ("class", "bytearray"),
                ("class", "memoryview"),
                ("class", "dict"),
                ("class", "list"),
                ("class", "tuple"),
            ],
            "library/functions.html": [
                ("class", "int"),
                ("class", "float"),
                ("class", "bool"),
                ("class", "object"),
            ],
            "library/constants.html": [
                ("data", "None"),
                ("data", "True"),
                ("data", "False"),
            ],
            "library/exceptions.html": [
                ("exception", "Exception"),
                ("exception", "BaseException"),
                ("exception", "ExceptionGroup"),
                ("exception", "BaseExceptionGroup"),
                ("exception", "AssertionError"),
                ("exception", "RuntimeError"),
                ("exception", "KeyError"),
                ("exception", "ValueError"),
                ("exception", "TypeError"),
                ("exception", "OSError"),
                ("exception", "TimeoutError"),
                ("exception", "UnicodeDecodeError"),
            ],
            "library/ssl.html": [
                ("module", "ssl"),
                ("class", "ssl.SSLContext"),
                ("method", "ssl.SSLContext.load_cert_chain"),
                ("method", "ssl.SSLContext.load_verify_locations"),
                ("function", "ssl.create_default_context"),
                ("exception", "ssl.SSLError"),
            ],
            "library/logging.html": [
                ("module", "logging"),
                ("function", "logging.getLogger"),
                ("class", "logging.Filter"),
                ("class", "logging.Logger"),
                ("class", "logging.LoggerAdapter"),
            ],
            "library/http.html": [("class", "http.HTTPStatus")],
            "library/enum.html": [("class", "enum.IntEnum"), ("class", "enum.Enum")],
            "library/typing.html": [
                ("data", "typing.Any"),
                ("data", "typing.Literal"),
                ("data", "typing.TypeAlias"),
                ("class", "typing.NamedTuple"),
            ],
            "library/collections.abc.html": [
                ("class", "collections.abc.Awaitable"),
                ("class", "collections.abc.AsyncIterable"),
                ("class", "collections.abc.AsyncIterator"),
                ("class", "collections.abc.Callable"),
                ("class", "collections.abc.Iterable"),
                ("class", "collections.abc.Iterator"),
                ("class", "collections.abc.Mapping"),
                ("class", "collections.abc.Sequence"),
            ],
            "library/types.html": [("class", "types.TracebackType")],
            "library/uuid.html": [("class", "uuid.UUID")],
            "library/zlib.html": [("function", "zlib.compressobj")],
            "library/functools.html": [("function", "functools.partial")],
            "library/os.html": [("class", "os.PathLike")],
            "library/threading.html": [("class", "threading.Event")],
            "library/socket.html": [("class", "socket.socket")],
            "library/contextlib.html": [("class", "contextlib.AbstractAsyncContextManager")],
            "library/math.html": [("data", "math.inf")],
            "library/urllib.request.html": [("function", "urllib.request.getproxies")],
        },
    ),
    "anyio": (
        "4",
        {
            "api.html": [
                ("function", "anyio.run"),
                ("function", "anyio.fail_after"),
                ("function", "anyio.move_on_after"),
                ("function", "anyio.create_task_group"),
                ("function", "anyio.wait_all_tasks_blocked"),
                ("function", "anyio.aclose_forcefully"),
                ("function", "anyio.connect_tcp"),
                ("function", "anyio.create_tcp_listener"),
                ("class", "anyio.Event"),
                ("class", "anyio.CancelScope"),
                ("exception", "anyio.BrokenResourceError"),
                ("exception", "anyio.ClosedResourceError"),
                ("exception", "anyio.BusyResourceError"),
                ("exception", "anyio.EndOfStream"),
                ("class", "anyio.abc.AsyncResource"),
                ("class", "anyio.abc.ByteStream"),
                ("class", "anyio.abc.ObjectStream"),
                # A type alias, listed as a class: annotations refer to it with :class:.
                ("class", "anyio.abc.AnyByteStream"),
                ("class", "anyio.abc.SocketStream"),
                ("class", "anyio.abc.Listener"),
                ("class", "anyio.abc.TaskGroup"),
                ("class", "anyio.abc.TaskStatus"),
                ("class", "anyio.streams.buffered.BufferedByteReceiveStream"),
                ("class", "anyio.streams.tls.TLSStream"),
                ("method", "anyio.streams.tls.TLSStream.wrap"),
            ],
        },
    ),
    "trio": (
        "0",
        {
            "reference-core.html": [
                ("function", "trio.open_nursery"),
                ("function", "trio.run"),
            ],
            "reference-io.html": [
                ("class", "trio.SSLStream"),
                ("class", "trio.abc.Stream"),
            ],
            "reference-testing.html": [
                ("class", "trio.testing.MockClock"),
                ("function", "trio.testing.memory_stream_pair"),
                ("function", "trio.testing.lockstep_stream_pair"),
            ],
        },
    ),
}


def inventory(project: str, version: str, pages: dict[str, list[tuple[str, str]]]) -> bytes:
    """The objects.inv content of ``project``: a text header and zlib-compressed lines."""
    lines = [
        # "$" stands for the name; Sphinx anchors a module at "module-NAME".
        f"{name} py:{role} 1 {page}#{'module-' if role == 'module' else ''}$ -\n"
        for page, entries in pages.items()
        for role, name in entries
    ]
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    return header.encode() + zlib.compress("".join(sorted(lines)).encode(), 9)


def main() -> None:
    """Write the inventories; with ``--check``, only check that they are up to date."""
    check = sys.argv[1:] == ["--check"]
    stale = []
    for project, (version, pages) in INVENTORIES.items():
        path = HERE / f"{project.lower()}.inv"
        content = inventory(project, version, pages)
        if check:
            if not path.exists() or path.read_bytes() != content:
                stale.append(path.name)
            continue
        path.write_bytes(content)
        print(f"wrote {path.name}: {sum(map(len, pages.values()))} names")
    if stale:
        sys.exit(f"{', '.join(stale)}: out of date; run python docs/_inventories/build.py")


if __name__ == "__main__":
    main()
