"""``python -m anyws``: the echo server and the interactive client, as subprocesses.

Every wait is bounded (`WAIT` seconds) and every process is killed if a test fails, so a
hang fails the test instead of the run. The server listens on port 0 and the tests read
the port it picked from its ``listening`` line, so that no two runs fight over a port.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anyws


#: Bound on every wait for a subprocess, in seconds.
WAIT = 20

ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ["asyncio", "trio"]

#: Every backend of ``--backend``.
CLI_BACKENDS = ["asyncio", "uvloop", "trio"]


#: The directory that holds the anyws under test: the source tree, or site-packages
#: when the tests run against an installed distribution (``nox -s dist``).
PACKAGE_PARENT = Path(anyws.__file__).resolve().parent.parent


def _environment() -> dict[str, str]:
    """The environment of subprocesses: they import the same anyws as the tests do."""
    env = dict(os.environ)
    paths = [str(PACKAGE_PARENT), str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


class Process:
    """``python -m anyws ARGS``, with its output read line by line in threads.

    With ``script``, ``python SCRIPT ARGS`` instead (tests/test_docs_examples.py).
    """

    def __init__(self, *args: str, script: str | None = None) -> None:
        command = ["-m", "anyws"] if script is None else [script]
        self.popen = subprocess.Popen(
            [sys.executable, *command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_environment(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: object, is_stdout: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            if is_stdout:
                self.stdout.append(line)
                self.lines.put(line)
            else:
                self.stderr.append(line)
        if is_stdout:
            self.lines.put(None)

    def expect(self, pattern: str) -> re.Match[str]:
        """Wait for a line of stdout that matches ``pattern``; return the match."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {WAIT}s; {self.output()}")
            if line is None:
                pytest.fail(f"stdout ended before a line matching {pattern!r}; {self.output()}")
            if match := re.search(pattern, line):
                return match

    def write(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.close()

    def wait(self) -> int:
        """Wait for the exit (at most `WAIT`) and for the whole output; return the code."""
        returncode = self.popen.wait(timeout=WAIT)
        for thread in self._threads:
            thread.join(timeout=WAIT)
        return returncode

    def output(self) -> str:
        return f"stdout: {''.join(self.stdout)!r}; stderr: {''.join(self.stderr)!r}"

    def cleanup(self) -> None:
        """Kill the process if it still runs, and release its pipes."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=WAIT)
        for thread in self._threads:
            thread.join(timeout=WAIT)
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``python -m anyws ARGS`` to completion, bounded by `WAIT`."""
    return subprocess.run(
        [sys.executable, "-m", "anyws", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_environment(),
        timeout=WAIT,  # kills the process on timeout
        check=False,
    )


def require(backend: str) -> str:
    """Skip unless ``backend``'s module imports; return ``backend``."""
    if backend != "asyncio":
        pytest.importorskip(backend)
    return backend


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return require(request.param)


@pytest.fixture
def server(backend: str) -> Iterator[tuple[Process, int]]:
    """A running echo server on 127.0.0.1 and its port."""
    process = Process("serve", "--host", "127.0.0.1", "--port", "0", "--backend", backend)
    try:
        port = int(process.expect(r"^echo server listening on 127\.0\.0\.1:(\d+)$").group(1))
        process.expect(r"^press Ctrl-C to stop$")
        yield process, port
    finally:
        process.cleanup()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_echo_session_then_sigint(server: tuple[Process, int], backend: str) -> None:
    process, port = server
    uri = f"ws://127.0.0.1:{port}/"
    client = Process(uri, "--backend", backend)
    try:
        client.expect(rf"^Connected to {re.escape(uri)}\.$")
        # Type a line, wait for its echo, then the next one, like a person would.
        client.write("hello\n")
        client.expect(r"^< hello$")
        client.write("world\n")
        client.expect(r"^< world$")
        client.close_stdin()  # Ctrl-D
        client.expect(r"^Connection closed: 1000 \(OK\)\.$")
        assert client.wait() == 0, client.output()
        assert client.stderr == []
    finally:
        client.cleanup()

    # The server still runs; Ctrl-C stops it cleanly.
    assert process.popen.poll() is None, process.output()
    process.popen.send_signal(signal.SIGINT)
    process.expect(r"^stopping$")
    assert process.wait() == 0, process.output()
    assert process.stderr == []


def test_piped_input(server: tuple[Process, int], backend: str) -> None:
    _, port = server
    uri = f"ws://127.0.0.1:{port}/"
    result = run(uri, "--backend", backend, stdin="hello\nworld\n")
    assert result.returncode == 0, result
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"Connected to {uri}."
    assert lines[-1] == "Connection closed: 1000 (OK)."
    # The client closes as soon as its input ends: the echo server replies to the close
    # frame at once, so echoes it hadn't sent yet are lost. What arrived came in order.
    assert lines[1:-1] in ([], ["< hello"], ["< hello", "< world"])


@pytest.mark.parametrize("client_backend", CLI_BACKENDS)
def test_bad_uri(client_backend: str) -> None:
    require(client_backend)
    result = run("http://localhost/", "--backend", client_backend)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("usage: python -m anyws ")
    assert result.stderr.endswith(
        "python -m anyws: error: http://localhost/ isn't a valid URI: scheme isn't ws or wss\n"
    )


@pytest.mark.parametrize("client_backend", CLI_BACKENDS)
def test_connection_refused(client_backend: str) -> None:
    require(client_backend)
    # A bound socket that doesn't listen: connecting to its port is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        uri = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        result = run(uri, "--backend", client_backend)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == f"Failed to connect to {uri}: {os.strerror(errno.ECONNREFUSED)}.\n"


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"anyws {anyws.__version__}\n",
        "",
    )


def test_console_script() -> None:
    """The ``anyws`` command that installing anyws puts beside the interpreter runs it."""
    script = Path(sys.executable).parent / ("anyws.exe" if sys.platform == "win32" else "anyws")
    if not script.exists():
        pytest.skip("anyws isn't installed in this environment (no console script)")
    result = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        cwd=PACKAGE_PARENT,
        env=_environment(),
        timeout=WAIT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"anyws {anyws.__version__}\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give a ws:// or wss:// URI, 'serve' or 'demo'"),
        (["ws://localhost/", "-H", "no colon"], "-H/--header takes 'Name: value', not 'no colon'"),
        (["ws://localhost/", "--insecure"], "--insecure and --cafile apply to wss:// URIs only"),
        (
            ["wss://localhost/", "--insecure", "--cafile", "x.pem"],
            "--insecure and --cafile exclude each other",
        ),
        (["ws://localhost/", "--ping-interval", "-1"], "--ping-interval can't be negative"),
    ],
)
def test_usage_errors(args: list[str], error: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stderr.endswith(f"python -m anyws: error: {error}\n"), result.stderr


#: A wss:// server that tells the client what it received, then closes with 1000.
TLS_SERVER = """\
import ssl, sys, anyio, anyws
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(sys.argv[1])
async def handler(websocket):
    header = websocket.request.headers.get("X-Test")
    await websocket.send(f"header={header} subprotocol={websocket.subprotocol}")
async def main():
    async with anyws.serve(handler, "127.0.0.1", 0, ssl=context, subprotocols=["chat"]) as server:
        print(f"wss://localhost:{server.port}/", flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


@pytest.fixture
def tls_server(tmp_path: Path, ca: Any) -> Iterator[tuple[str, Path]]:
    """A `TLS_SERVER` and its URI, with the file of the CA that signed its certificate."""
    certificate = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(certificate))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    process = Process(TLS_SERVER, str(certificate), script="-c")
    try:
        yield process.expect(r"^(wss://localhost:\d+/)$").group(1), ca_file
    finally:
        process.cleanup()


@pytest.mark.parametrize("trust", ["--cafile", "--insecure"])
def test_client_options(tls_server: tuple[str, Path], backend: str, trust: str) -> None:
    """-H and --subprotocol reach the server, over wss:// trusted by --cafile or --insecure."""
    uri, ca_file = tls_server
    options = ["--cafile", str(ca_file)] if trust == "--cafile" else ["--insecure"]
    args = [uri, *options, "-H", "X-Test: yes", "--subprotocol", "chat", "--ping-interval", "0"]
    client = Process(*args, "--backend", backend)
    try:
        client.expect(rf"^Connected to {re.escape(uri)}\.$")
        client.expect(r"^< header=yes subprotocol=chat$")
        client.expect(r"^Connection closed: 1000 \(OK\)\.$")  # the handler returned
        assert client.wait() == 0, client.output()
        assert client.stderr == []
    finally:
        client.cleanup()


def test_untrusted_certificate(tls_server: tuple[str, Path], backend: str) -> None:
    uri, _ = tls_server
    result = run(uri, "--backend", backend)
    assert result.returncode == 1, result
    assert result.stderr.startswith(f"Failed to connect to {uri}: certificate verify failed: ")
    assert result.stderr.count("\n") == 1, result.stderr


def test_message_lines() -> None:
    """Text as it is; binary as its length and up to 32 bytes of hex."""
    from anyws._cli import format_message

    assert format_message("hello") == "< hello"
    assert format_message(b"hello") == "< (binary, 5 bytes) 68656c6c6f"
    assert format_message(bytes(range(40))) == (
        "< (binary, 40 bytes) " + bytes(range(32)).hex() + "..."
    )
