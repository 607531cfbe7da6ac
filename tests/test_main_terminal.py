"""``python -m anyws`` under a real pseudo-terminal, as a person at a keyboard uses it.

The client runs on the slave side of a `pty` pair, as its controlling terminal, so the
terminal's line discipline is the real one: Ctrl-C (``\\x03``) becomes SIGINT, Ctrl-D
(``\\x04``) ends the input, Enter is ``\\r``, and what is typed is echoed by the
terminal. What the program writes goes through `pyte`, a terminal emulator, so that the
assertions are on the screen a person would see, escape sequences applied.

Every wait is bounded (`WAIT`): a hang fails the test rather than the run.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.test_client_server import switching_protocols
from tests.test_main import CLI_BACKENDS, ROOT, WAIT, Process, _environment, require


pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX")
termios = pytest.importorskip("termios", reason="pseudo-terminals are POSIX")
pyte = pytest.importorskip("pyte")

COLUMNS, ROWS = 80, 24

#: Runs in the child: a new session (``start_new_session``) that opens the terminal
#: takes it as its controlling terminal, in the foreground, as a shell would give it.
LAUNCHER = """\
import os, sys
os.close(os.open(os.ttyname(0), os.O_RDWR))
os.execv(sys.executable, [sys.executable, "-m", "anyws", *sys.argv[1:]])
"""

#: A server for the client to talk to, driven through its standard input: each line
#: is sent to the connected client (``b:`` sends the rest as binary); the end of input
#: closes with 1001 (going away).
SCRIPTED_SERVER = """\
import sys, anyio, anyws
async def handler(websocket):
    async for line in anyio.wrap_file(sys.stdin):
        line = line.rstrip("\\n")
        await websocket.send(line[2:].encode() if line.startswith("b:") else line)
    await websocket.close(1001)
async def main():
    async with anyws.serve(handler, "127.0.0.1", 0) as server:
        print(f"ws://127.0.0.1:{server.port}/", flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


class Terminal:
    """``python -m anyws ARGS`` on a pseudo-terminal, its screen emulated by pyte."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = _environment()
        env["TERM"] = "xterm"
        self.master = master
        self.popen = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            cwd=ROOT,
            env=env,
        )
        os.close(slave)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.ended = False
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as exc:  # EIO: every process closed the slave side
                if exc.errno != errno.EIO:
                    raise
                data = b""
            with self.changed:
                if data:
                    self.raw += data
                else:
                    self.ended = True
                self.changed.notify_all()
            if not data:
                return

    def lines(self) -> list[str]:
        """The screen, a string per row, trailing spaces and empty last rows removed."""
        with self.changed:
            self.stream.feed(bytes(self.raw))
            self.raw.clear()
        rows = [row.rstrip() for row in self.screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def wait_for(self, what: str, check: Callable[[list[str]], bool]) -> list[str]:
        """Wait until ``check(self.lines())`` holds; return the lines."""
        with self.changed:
            self.changed.wait_for(lambda: check(self.lines()) or self.ended, timeout=WAIT)
        lines = self.lines()
        if not check(lines):
            pytest.fail(f"the screen never showed {what}:\n" + "\n".join(lines))
        return lines

    def wait_for_line(self, pattern: str) -> re.Match[str]:
        """Wait for a row that matches ``pattern`` entirely; return the match."""
        lines = self.wait_for(
            repr(pattern), lambda lines: any(re.fullmatch(pattern, line) for line in lines)
        )
        match = next(filter(None, (re.fullmatch(pattern, line) for line in lines)))
        return match

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def exit_status(self) -> int:
        """Wait for the exit (bounded) and for the end of the output; return the status."""
        status = self.popen.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        return status

    def cleanup(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        os.close(self.master)


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return require(request.param)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(*args))
        return started[-1]

    yield start
    for terminal in started:
        terminal.cleanup()


def start_demo(terminals: Callable[..., Terminal], backend: str) -> Terminal:
    """The demo, with one message typed and echoed."""
    terminal = terminals("demo", "--backend", backend)
    port = terminal.wait_for_line(r"echo server listening on 127\.0\.0\.1:(\d+)").group(1)
    terminal.wait_for_line(rf"Connected to ws://127\.0\.0\.1:{port}/\.")
    terminal.wait_for_line(">")  # the prompt, "> " (rows are right-stripped)
    terminal.type("hello\r")
    terminal.wait_for_line("< hello")
    return terminal


def assert_ends_with(lines: list[str], *expected: str) -> None:
    assert lines[-len(expected) :] == list(expected), "\n".join(lines)
    assert not any("Traceback" in line or "Exception" in line for line in lines), lines


def test_ctrl_c(terminals: Callable[..., Terminal], backend: str) -> None:
    """Ctrl-C, while a line is half typed, closes normally, says so and exits 130."""
    terminal = start_demo(terminals, backend)
    terminal.type("half a li")
    terminal.wait_for_line("> half a li")
    terminal.type("\x03")
    assert terminal.exit_status() == 128 + signal.SIGINT
    lines = terminal.lines()
    assert_ends_with(lines, "> hello", "< hello", "Connection closed: 1000 (OK).")


def test_ctrl_d(terminals: Callable[..., Terminal], backend: str) -> None:
    """Ctrl-D on an empty line closes normally, says so and exits 0."""
    terminal = start_demo(terminals, backend)
    terminal.type("\x04")
    assert terminal.exit_status() == 0
    assert_ends_with(terminal.lines(), "> hello", "< hello", "Connection closed: 1000 (OK).")


@pytest.fixture
def scripted_server() -> Iterator[tuple[Process, str]]:
    """`SCRIPTED_SERVER` running, and its URI."""
    process = Process(SCRIPTED_SERVER, script="-c")
    try:
        yield process, process.expect(r"^(ws://127\.0\.0\.1:\d+/)$").group(1)
    finally:
        process.cleanup()


def test_server_message_and_close(
    terminals: Callable[..., Terminal], backend: str, scripted_server: tuple[Process, str]
) -> None:
    """A message from the server goes above the half-typed line; its 1001 ends the client."""
    server, uri = scripted_server
    terminal = terminals(uri, "--backend", backend)
    terminal.wait_for_line(re.escape(f"Connected to {uri}."))
    terminal.wait_for_line(">")
    terminal.type("draft")
    terminal.wait_for_line("> draft")
    server.write("news\n")
    # The message is inserted above the line being typed, which stays as it was...
    terminal.wait_for_line("< news")
    lines = terminal.lines()
    assert lines[-2:] == ["< news", "> draft"], lines
    server.write("b:bin\n")
    terminal.wait_for_line(r"< \(binary, 3 bytes\) 62696e")
    assert terminal.lines()[-3:] == ["< news", "< (binary, 3 bytes) 62696e", "> draft"]
    # ...and the terminal still holds what was typed: finishing it sends it all.
    terminal.type(" done\r")
    terminal.wait_for_line("> draft done")
    server.close_stdin()  # the server closes with 1001
    assert terminal.exit_status() == 0
    assert_ends_with(terminal.lines(), "Connection closed: 1001 (going away).")


def test_server_unreachable(terminals: Callable[..., Terminal], backend: str) -> None:
    """Nothing listens: one line says so, exit status 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        uri = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        terminal = terminals(uri, "--backend", backend)
        assert terminal.exit_status() == 1
    assert terminal.lines() == [f"Failed to connect to {uri}: {os.strerror(errno.ECONNREFUSED)}."]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 that the test answers by hand (or not)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(WAIT)
        yield sock


def test_ctrl_c_while_connecting(
    terminals: Callable[..., Terminal], backend: str, listener: socket.socket
) -> None:
    """Ctrl-C during an opening handshake that gets no answer gives up at once."""
    uri = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    terminal = terminals(uri, "--backend", backend)
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(WAIT)
        assert connection.recv(4096).startswith(b"GET / HTTP/1.1\r\n")  # then, no answer
        terminal.type("\x03")
        assert terminal.exit_status() == 128 + signal.SIGINT
    assert terminal.lines() == ["Interrupted."]


def test_second_ctrl_c_while_closing(
    terminals: Callable[..., Terminal], backend: str, listener: socket.socket
) -> None:
    """Ctrl-C sends a close frame; a second one doesn't wait for the server's answer."""
    uri = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    terminal = terminals(uri, "--backend", backend, "--ping-interval", "0")
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(WAIT)
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(4096)
        connection.sendall(switching_protocols(request))
        terminal.wait_for_line(">")
        terminal.type("\x03")
        # A masked close frame with code 1000 (2 bytes of header, 4 of mask, 2 of code).
        frame = b""
        while len(frame) < 8:
            frame += connection.recv(8 - len(frame))
        assert frame[:2] == b"\x88\x82"
        assert bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])) == b"\x03\xe8"
        # The server never answers: without a second Ctrl-C, the client would wait
        # for close_timeout (10 s).
        terminal.type("\x03")
        assert terminal.exit_status() == 128 + signal.SIGINT
    assert_ends_with(terminal.lines(), f"Connected to {uri}.", "Interrupted.")
