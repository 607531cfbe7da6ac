"""The command line: an interactive client, an echo server, and both at once.

    anyws ws://localhost:8765/ [-H 'Name: value'] [--subprotocol NAME] [--insecure]
                               [--cafile FILE] [--ping-interval SECONDS]
    anyws serve [--host H] [--port P]
    anyws demo
    anyws --version

Each takes ``--backend asyncio|uvloop|trio``; ``python -m anyws`` is the same program.

# Strategy: how the client ends

The client ends at once, with one line saying why, on any of: end of input (Ctrl-D),
Ctrl-C, or a close from the server. Three things make that so.

- Standard input is read by a daemon thread of our own, with `os.read` on the file
  descriptor, which hands each line to the event loop through a `BlockingPortal`.
  Reading it in anyio's worker thread pool (as the first version did) ties the loop
  to a thread blocked in ``readline()``: at exit, asyncio waits for that thread, so
  the program hung until Enter was pressed. A daemon thread is abandoned at exit, and
  `os.read` holds none of the locks that ``sys.stdin`` would hold at shutdown.
- SIGINT is received as a message (`anyio.open_signal_receiver`), opened before
  anything else, rather than left to raise `KeyboardInterrupt` into whatever task it
  lands in (on trio that came out as an ExceptionGroup traceback). The first Ctrl-C
  stops the session and closes the connection normally (code 1000); a second one, or
  one before the connection is open, gives up at once.
- One task prints incoming messages and owns the end of the session: when the
  connection closes, whoever closed it, the loop ends and the session with it.

On a terminal, incoming messages are inserted above the line being typed, which the
terminal keeps in its own line buffer; the line is moved down, not lost.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import importlib.util
import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TextIO, TypeVar

import anyio
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectSendStream

from . import ClientConnection, ConnectionClosed, ServerConnection, connect, serve
from ._version import __version__
from .exceptions import InvalidHandshake, InvalidProxy, InvalidURI
from .sansio import Close, parse_uri


__all__ = ["main"]

T = TypeVar("T")

BACKENDS = ("asyncio", "uvloop", "trio")

#: Binary messages are shown as hex, up to this many bytes.
HEX_PREVIEW = 32

#: Exit status after Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


# Terminal output ---------------------------------------------------------------------


class Console:
    """Where the client writes: plain lines, or a prompt kept intact on a terminal.

    Args:
        output: The stream to write to.
        interactive: Show a ``> `` prompt and print incoming messages above the line
            being typed (VT100 escape sequences): when both standard input and
            ``output`` are terminals, and not on Windows.
    """

    def __init__(self, output: TextIO, *, interactive: bool) -> None:
        self.output = output
        self.interactive = interactive

    def prompt(self) -> None:
        """Show the prompt, on a terminal."""
        if self.interactive:
            self.output.write("> ")
            self.output.flush()

    def line(self, line: str) -> None:
        """Print ``line`` (before the first prompt)."""
        self.output.write(f"{line}\n")
        self.output.flush()

    def message(self, line: str) -> None:
        """Print ``line`` without disturbing what the user is typing."""
        if self.interactive:
            self.output.write(
                "\x1b7"  # save the cursor (in the line being typed)
                "\n"  # go down a line, scrolling the screen if at the bottom
                "\x1b[A"  # back up, to the line being typed
                "\x1b[L"  # insert a blank line there: the typed line moves down
                f"{line}\n"  # write in the blank line
                "\x1b8"  # restore the cursor: the row where the typed line was
                "\x1b[B"  # and down a row, where it is now (no-op at the bottom)
            )
        else:
            self.output.write(f"{line}\n")
        self.output.flush()

    def final(self, line: str) -> None:
        """Print ``line`` as the last one, over the prompt on a terminal."""
        if self.interactive:
            self.output.write("\r\x1b[K")  # start of the line, erased
        self.output.write(f"{line}\n")
        self.output.flush()


def format_message(message: str | bytes) -> str:
    """The line that shows an incoming message: ``< text``, or length and hex."""
    if isinstance(message, str):
        return f"< {message}"
    preview = message[:HEX_PREVIEW].hex()
    more = "..." if len(message) > HEX_PREVIEW else ""
    return f"< (binary, {len(message)} bytes) {preview}{more}"


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a failed connection: the OS's words for an errno, if any."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return str(cause.reason or cause)
        if isinstance(cause, OSError) and cause.errno is not None:
            # Not str(exc): each backend words it its own way, around the same errno.
            return os.strerror(cause.errno)
        cause = cause.__cause__
    return str(exc) or type(exc).__name__


# Standard input ----------------------------------------------------------------------


def _read_lines(
    fd: int, encoding: str, portal: BlockingPortal, lines: MemoryObjectSendStream[str]
) -> None:
    """Read ``fd`` until its end; hand each line to the event loop; then close ``lines``.

    Runs in a daemon thread. When the loop is gone (the portal stopped), it returns.
    """
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    pending = ""
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO when the terminal went away, EBADF...
                data = b""
            pending += decoder.decode(data, final=not data)
            *complete, pending = pending.split("\n")
            if not data and pending:  # input ended in the middle of a line
                complete.append(pending)
            for line in complete:
                portal.call(lines.send, line.removesuffix("\r"))
            if not data:
                portal.call(lines.aclose)
                return
    except Exception:  # the portal stopped, the stream closed: the session is over
        return


@asynccontextmanager
async def stdin_lines() -> AsyncIterator[AsyncIterator[str]]:
    """Lines of standard input, without their line ending; the iteration ends at EOF.

    Leaving the context abandons the reading thread: it may stay blocked in `os.read`
    until the process exits, and nothing waits for it.
    """
    send, receive = anyio.create_memory_object_stream[str]()
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    async with BlockingPortal() as portal, receive:
        thread = threading.Thread(
            target=_read_lines,
            args=(sys.stdin.fileno(), encoding, portal, send),
            name="anyws stdin",
            daemon=True,
        )
        thread.start()
        try:
            yield receive
        finally:
            await portal.stop(cancel_remaining=True)
            send.close()


# Ctrl-C ------------------------------------------------------------------------------


@contextmanager
def interrupts() -> Iterator[AsyncIterator[Any] | None]:
    """SIGINT as an async iterator, or ``None`` where that isn't supported (Windows).

    Without it, Ctrl-C raises `KeyboardInterrupt`, which `main` turns into exit
    status 130.
    """
    if sys.platform == "win32":
        yield None
        return
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        yield signals


# The client --------------------------------------------------------------------------


class Client:
    """One run of the interactive client: connect, talk, and end with one line.

    Args:
        uri: The URI to connect to.
        options: Keyword arguments for `anyws.connect`.
        console: Where to write.
    """

    def __init__(self, uri: str, options: dict[str, Any], console: Console) -> None:
        self.uri = uri
        self.options = options
        self.console = console
        self.interrupted = False
        # Cancelled by a Ctrl-C before the connection is open, or by a second one.
        self.run_scope = anyio.CancelScope()
        # The session once connected: a first Ctrl-C cancels it, and the connection
        # then closes normally.
        self.session_scope: anyio.CancelScope | None = None

    async def watch(self, signals: AsyncIterator[Any]) -> None:
        """Turn each Ctrl-C into the cancellation of the current step."""
        async for _ in signals:
            self.interrupted = True
            if self.session_scope is not None and not self.session_scope.cancel_called:
                self.session_scope.cancel()
            else:
                self.run_scope.cancel()

    async def run(self) -> int:
        """Connect and talk until the connection closes; return the exit status."""
        with self.run_scope:
            return await self._connect_and_talk()
        self.console.final("Interrupted.")
        return EXIT_INTERRUPTED

    async def _connect_and_talk(self) -> int:
        connected = False
        try:
            async with connect(self.uri, **self.options) as websocket:
                connected = True
                self.console.line(f"Connected to {self.uri}.")
                with anyio.CancelScope() as self.session_scope:
                    await self._talk(websocket)
        except (OSError, InvalidHandshake, InvalidURI, InvalidProxy) as exc:
            # TimeoutError (open_timeout) is an OSError; InvalidURI is a bad redirect,
            # InvalidProxy a bad proxy variable in the environment.
            if connected:
                raise
            print(f"Failed to connect to {self.uri}: {describe_error(exc)}.", file=sys.stderr)
            return 1
        code = websocket.close_code
        assert code is not None  # the connection is closed after the async with
        self.console.final(f"Connection closed: {Close(code, websocket.close_reason or '')}.")
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if code == 1006 else 0

    async def _talk(self, websocket: ClientConnection) -> None:
        async with stdin_lines() as lines, anyio.create_task_group() as task_group:

            async def send_lines() -> None:
                self.console.prompt()
                async for line in lines:
                    try:
                        await websocket.send(line)
                    except ConnectionClosed:
                        return
                    self.console.prompt()
                # End of input: close, and let the loop below print the messages that
                # arrive before the server's close frame.
                await websocket.close()

            task_group.start_soon(send_lines)
            try:
                async for message in websocket:
                    self.console.message(format_message(message))
            except ConnectionClosed:
                pass
            task_group.cancel_scope.cancel()


async def echo(websocket: ServerConnection) -> None:
    """Send every message received back to its sender."""
    async for message in websocket:
        await websocket.send(message)


async def drive(client: Client, signals: AsyncIterator[Any] | None) -> int:
    """Run ``client``, with each Ctrl-C from ``signals`` turned into its orderly end."""
    if signals is None:
        return await client.run()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(client.watch, signals)
        status = await client.run()
        task_group.cancel_scope.cancel()
    return status


async def run_client(uri: str, options: dict[str, Any], console: Console) -> int:
    # Ctrl-C is a message from here on: nothing can raise KeyboardInterrupt into a task.
    with interrupts() as signals:
        return await drive(Client(uri, options, console), signals)


async def run_server(host: str, port: int) -> int:
    # Signals first: a Ctrl-C right after the "listening" line must stop cleanly too.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve(echo, host, port) as server:
            for address in server.sockets:
                print(f"echo server listening on {address[0]}:{address[1]}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            async for _ in signals:
                print("stopping", flush=True)
                break
    return 0


async def run_demo(options: dict[str, Any], console: Console) -> int:
    with interrupts() as signals:
        async with serve(echo, "127.0.0.1", 0) as server:
            print(f"echo server listening on 127.0.0.1:{server.port}", flush=True)
            client = Client(f"ws://127.0.0.1:{server.port}/", options, console)
            return await drive(client, signals)


# Arguments ---------------------------------------------------------------------------


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="An interactive WebSocket client (URI), an echo server (serve), "
        "or both in one process (demo).",
        epilog="In the client, type a message and press Enter to send it; Ctrl-D or "
        "Ctrl-C closes the connection and exits.",
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="URI|serve|demo",
        help="a ws:// or wss:// URI to connect to; 'serve' to run an echo server; "
        "'demo' to run one and talk to it",
    )
    parser.add_argument("--version", action="version", version=f"anyws {__version__}")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    client = parser.add_argument_group("client options")
    client.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra header for the opening handshake (repeatable)",
    )
    client.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="a subprotocol to offer (repeatable, in order of preference)",
    )
    client.add_argument(
        "--insecure",
        action="store_true",
        help="for wss://, don't verify the server's certificate",
    )
    client.add_argument(
        "--cafile",
        metavar="FILE",
        help="for wss://, trust the CA certificates in FILE (PEM) instead of the system's",
    )
    client.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="seconds between keepalive pings; 0 turns them off (default: 20)",
    )
    server = parser.add_argument_group("server options")
    server.add_argument("--host", default="127.0.0.1", help="interface to serve on")
    server.add_argument("--port", type=int, default=8765, help="port to serve on")
    return parser


def client_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `connect` that the command line asks for."""
    options: dict[str, Any] = {}
    headers = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            parser.error(f"-H/--header takes 'Name: value', not {header!r}")
        headers.append((name.strip(), value.strip()))
    if headers:
        options["additional_headers"] = headers
    if args.subprotocol:
        options["subprotocols"] = args.subprotocol
    if args.ping_interval < 0:
        parser.error("--ping-interval can't be negative")
    options["ping_interval"] = args.ping_interval or None
    if args.insecure or args.cafile:
        if args.target in ("serve", "demo") or not parse_uri(args.target).secure:
            parser.error("--insecure and --cafile apply to wss:// URIs only")
        if args.insecure and args.cafile:
            parser.error("--insecure and --cafile exclude each other")
        context = ssl.create_default_context()
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            try:
                context = ssl.create_default_context(cafile=args.cafile)
            except (OSError, ssl.SSLError) as exc:
                parser.error(f"--cafile {args.cafile}: {describe_error(exc)}")
        options["ssl"] = context
    return options


def run(backend: str, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`anyio.run` ``func(*args)`` on ``backend`` (uvloop is asyncio with its loop)."""
    if backend == "uvloop":
        # Imported by name: uvloop is optional, and has no stubs where it's missing.
        uvloop = importlib.import_module("uvloop")
        options = {"loop_factory": uvloop.new_event_loop}
        return anyio.run(func, *args, backend="asyncio", backend_options=options)
    return anyio.run(func, *args, backend=backend)


def main(argv: Sequence[str] | None = None, prog: str = "anyws") -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default); return the status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.target is None:
        parser.error("give a ws:// or wss:// URI, 'serve' or 'demo'")
    module = "uvloop" if args.backend == "uvloop" else args.backend
    if importlib.util.find_spec(module) is None:
        parser.error(f"--backend {args.backend} needs {module}: pip install {module}")
    if args.target not in ("serve", "demo"):
        try:
            parse_uri(args.target)
        except InvalidURI as exc:
            parser.error(str(exc))
    options = client_options(parser, args)
    logging.basicConfig(
        format="%(asctime)s %(name)s %(message)s",
        level=logging.DEBUG if args.verbose else logging.WARNING,
    )
    console = Console(
        sys.stdout,
        interactive=sys.platform != "win32" and sys.stdin.isatty() and sys.stdout.isatty(),
    )
    try:
        if args.target == "serve":
            return run(args.backend, run_server, args.host, args.port)
        if args.target == "demo":
            return run(args.backend, run_demo, options, console)
        return run(args.backend, run_client, args.target, options, console)
    except KeyboardInterrupt:  # Windows, or a Ctrl-C before the handler is installed
        console.final("Interrupted.")
        return EXIT_INTERRUPTED
