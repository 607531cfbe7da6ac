"""Interoperability with the websockets library: anyws as a client and as a server.

Every test runs on each backend of tests/conftest.py, against one *flavour* of websockets:

- ``sync``: websockets' threading implementation, which works whatever loop runs anyws.
  The server's ``serve_forever`` runs in a thread of its own (and each handler in a
  thread that it starts); each call of the client runs in a worker thread through
  `anyio.to_thread.run_sync`, with a timeout so that no thread can block for ever.
- ``asyncio``: ``websockets.asyncio``, in the test's own event loop; skipped on trio.

The websockets server (`websockets_server`) and the anyws server (`anyws_server`) run
the same echo handler, which also obeys a few commands (``"!close 1000 bye"``...) so
that the client drives what the server does. Each handler records what it saw of its
connection (`Seen`), to be checked once the server has shut down, which waits for the
handlers. Whatever fails on the other side of the test (a handler thread, a handler
task, ``serve_forever``) is collected and fails the test.

Closing strings, per RFC 6455: the endpoint that receives a close frame first answers
with one echoing its status code (section 5.5.1; anyws and websockets echo the reason
too), so it reports ``received X; then sent X`` and the other end ``sent X; then
received X``. Codes 1000 and 1001 on both frames make `ConnectionClosedOK`; others,
1011 for instance, `ConnectionClosedError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
import websockets.protocol
import websockets.sync.client
import websockets.sync.server

import anyws

from .conftest import MS


#: Bound on every test.
TIMEOUT = 10
#: Bound on each blocking call of websockets' sync API (a receive, a pong, the handshake).
PEER_TIMEOUT = 5
#: close_timeout on both sides: a failed closing handshake must not eat the test's budget.
CLOSE_TIMEOUT = 2

MiB = 2**20

#: Messages of every kind; each must come back equal, and of the same type.
MESSAGES: list[str | bytes] = [
    "hello",
    b"\x00\x01\xfe\xff",
    "héllo wörld — ✓ 中文 🌍",
    "",
    b"",
    bytes(range(256)),
]

WsClosed = websockets.exceptions.ConnectionClosed
WsClosedOK = websockets.exceptions.ConnectionClosedOK
WsClosedError = websockets.exceptions.ConnectionClosedError


@pytest.fixture(params=["sync", "asyncio"])
def flavour(request: pytest.FixtureRequest, anyio_backend_name: str) -> str:
    """Which websockets API the test talks to; see the module docstring."""
    if request.param == "asyncio" and anyio_backend_name != "asyncio":
        pytest.skip(
            "websockets.asyncio runs only on an asyncio loop; "
            "on trio, the sync flavour (websockets in threads) covers interop"
        )
    return str(request.param)


def coarse_loop_clock() -> bool:
    """Whether the running loop's clock ticks in whole milliseconds: uvloop's does.

    websockets.asyncio times pings with ``loop.time()``: under uvloop, a round trip on
    localhost often measures 0.0. websockets.sync uses `time.monotonic`, anyws
    `time.perf_counter`.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return False
    return type(loop).__module__.startswith("uvloop")


def assert_latency(latency: float, *, coarse_clock: bool) -> None:
    """A measured round trip: positive, unless a millisecond clock rounded it to 0."""
    assert latency < 1
    if coarse_clock:
        assert latency >= 0
    else:
        assert latency > 0


# What the other side saw ------------------------------------------------------------


@dataclass
class Seen:
    """What a server handler saw of its connection."""

    subprotocol: str | None
    #: The ConnectionClosed that ended the handler's receive loop, if any.
    closed: Exception | None = None
    #: The connection's close code and reason when the handler ended.
    close_code: int | None = None
    close_reason: str | None = None


@dataclass
class Peer:
    """A running server, the other side of a test: its port, what it saw, what failed."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    #: Handlers of websockets' sync server that haven't returned yet: they run in
    #: threads that shutdown() doesn't wait for.
    running: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

    def wait_idle(self) -> None:
        with self.idle:
            self.idle.wait_for(lambda: self.running == 0, timeout=PEER_TIMEOUT)

    def only(self) -> Seen:
        """What the handler of the one connection saw (once it has returned).

        websockets' sync server may start the handler's thread after the client's
        handshake, and (before 17.0) its shutdown() doesn't wait for handlers: so
        wait here for a handler to have returned, rather than trust the shutdown.
        """
        with self.idle:
            self.idle.wait_for(lambda: self.seen and self.running == 0, timeout=PEER_TIMEOUT)
        assert len(self.seen) == 1, self.seen
        return self.seen[0]

    def guard(self, func: Callable[[], None]) -> Callable[[], None]:
        """Wrap the target of a thread: what it raises is recorded."""

        def run() -> None:
            try:
                func()
            except BaseException as exc:
                self.errors.append(exc)
                raise

        return run

    def check(self) -> None:
        if self.errors:
            raise AssertionError(f"the other side failed: {self.errors!r}") from self.errors[0]


class Boom(Exception):
    """Raised on purpose by a handler told ``"!raise"``."""


def command(message: str | bytes) -> list[str]:
    """``"!close 1000 bye"`` -> ``["close", "1000", "bye"]``; ``[]`` for plain data."""
    if isinstance(message, str) and message.startswith("!"):
        return message[1:].split(" ", 2)
    return []


def joined(fragments: list[Any]) -> str | bytes:
    return "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)


# The echo handler, in two flavours. Commands:
#   !close CODE [REASON]  close the connection with that code and reason;
#   !streaming            receive the next message fragment by fragment, echo it whole,
#                         then send "N fragments";
#   !raise                raise Boom (the server then closes with 1011).


def sync_handler(peer: Peer) -> Callable[[Any], None]:
    """The echo handler for websockets' sync server (one thread per connection)."""

    def handler(ws: Any) -> None:
        seen = Seen(ws.subprotocol)
        with peer.idle:
            peer.running += 1
        try:
            while True:
                try:
                    message = ws.recv()
                except WsClosed as exc:
                    seen.closed = exc
                    return
                match command(message):
                    case ["close", code, *reason]:
                        ws.close(int(code), "".join(reason))
                    case ["streaming"]:
                        fragments = list(ws.recv_streaming())
                        ws.send(joined(fragments))
                        ws.send(f"{len(fragments)} fragments")
                    case ["raise"]:
                        raise Boom("handler failed on purpose")
                    case _:
                        ws.send(message)
        except Boom:
            raise
        except Exception as exc:
            peer.errors.append(exc)
            raise
        finally:
            seen.close_code, seen.close_reason = ws.close_code, ws.close_reason
            peer.seen.append(seen)
            with peer.idle:
                peer.running -= 1
                peer.idle.notify_all()

    return handler


def async_handler(peer: Peer) -> Callable[[Any], Any]:
    """The echo handler for websockets' asyncio server and for anyws' server.

    The two connection classes have the same API; only their exceptions differ.
    """

    async def handler(ws: Any) -> None:
        seen = Seen(ws.subprotocol)
        with peer.idle:
            peer.running += 1
        try:
            while True:
                try:
                    message = await ws.recv()
                except (WsClosed, anyws.ConnectionClosed) as exc:
                    seen.closed = exc
                    return
                match command(message):
                    case ["close", code, *reason]:
                        await ws.close(int(code), "".join(reason))
                    case ["streaming"]:
                        fragments = [fragment async for fragment in ws.recv_streaming()]
                        await ws.send(joined(fragments))
                        await ws.send(f"{len(fragments)} fragments")
                    case ["raise"]:
                        raise Boom("handler failed on purpose")
                    case _:
                        await ws.send(message)
        except Boom:
            raise
        except Exception as exc:
            peer.errors.append(exc)
            raise
        finally:
            seen.close_code, seen.close_reason = ws.close_code, ws.close_reason
            peer.seen.append(seen)
            with peer.idle:
                peer.running -= 1
                peer.idle.notify_all()

    return handler


# Servers ----------------------------------------------------------------------------


@asynccontextmanager
async def websockets_server(flavour: str, **options: Any) -> AsyncIterator[Peer]:
    """Run a websockets echo server on 127.0.0.1; shut it down, handlers done, on exit."""
    peer = Peer()
    options = {"close_timeout": CLOSE_TIMEOUT, **options}
    if flavour == "sync":
        server = websockets.sync.server.serve(sync_handler(peer), "127.0.0.1", 0, **options)
        peer.port = server.socket.getsockname()[1]
        thread = threading.Thread(
            target=peer.guard(server.serve_forever), name="websockets server", daemon=True
        )
        thread.start()
        try:
            yield peer
        finally:
            # Even when the test was cancelled by its timeout: stop the server thread.
            # shutdown() closes what is still open (1001) and waits for the handlers,
            # each bounded by close_timeout.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.shutdown)
                await anyio.to_thread.run_sync(thread.join, PEER_TIMEOUT)
                await anyio.to_thread.run_sync(peer.wait_idle)
            if thread.is_alive():  # pragma: no cover - shutdown() failed to stop it
                peer.errors.append(RuntimeError("websockets' serve_forever didn't stop"))
    else:
        async with websockets.asyncio.server.serve(
            async_handler(peer), "127.0.0.1", 0, **options
        ) as server:
            peer.port = server.sockets[0].getsockname()[1]
            yield peer
    peer.check()


@asynccontextmanager
async def anyws_server(**options: Any) -> AsyncIterator[Peer]:
    """Run an anyws echo server on 127.0.0.1; on exit, close it and wait for handlers."""
    peer = Peer()
    options = {"close_timeout": CLOSE_TIMEOUT, **options}
    async with anyws.serve(async_handler(peer), "127.0.0.1", 0, **options) as server:
        peer.port = server.port
        yield peer
    peer.check()


# The websockets client, behind one async interface ------------------------------------


class WsClient:
    """A websockets client connection: its blocking calls as coroutines, in either flavour.

    ``ws`` is websockets' connection itself, for its attributes.
    """

    def __init__(self, ws: Any, *, threaded: bool) -> None:
        self.ws = ws
        self.threaded = threaded

    async def send(self, message: Any) -> None:
        if self.threaded:
            await anyio.to_thread.run_sync(self.ws.send, message)
        else:
            await self.ws.send(message)

    async def recv(self) -> str | bytes:
        if self.threaded:
            return await anyio.to_thread.run_sync(self.ws.recv, PEER_TIMEOUT)
        return await self.ws.recv()  # type: ignore[no-any-return]

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping, wait for the pong, return the latency."""
        if self.threaded:

            def ping() -> float:
                pong = self.ws.ping(data)
                if not pong.wait(PEER_TIMEOUT):
                    raise TimeoutError("no pong")
                return self.ws.latency  # type: ignore[no-any-return]

            return await anyio.to_thread.run_sync(ping)
        return await (await self.ws.ping(data))  # type: ignore[no-any-return]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.threaded:
            await anyio.to_thread.run_sync(self.ws.close, code, reason)
        else:
            await self.ws.close(code, reason)


@asynccontextmanager
async def websockets_client(flavour: str, uri: str, **options: Any) -> AsyncIterator[WsClient]:
    """Connect with websockets' client; close on exit (1000)."""
    options = {"open_timeout": PEER_TIMEOUT, "close_timeout": CLOSE_TIMEOUT, **options}
    if flavour == "sync":
        # connect() is a context manager in every websockets release that has the sync
        # API; entering it connects (since 17.1, calling it no longer does).
        def open_() -> tuple[Any, Any]:
            context = websockets.sync.client.connect(uri, **options)
            return context, context.__enter__()

        context, ws = await anyio.to_thread.run_sync(open_)
        try:
            yield WsClient(ws, threaded=True)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(context.__exit__, None, None, None)
    else:
        async with websockets.asyncio.client.connect(uri, **options) as ws:
            yield WsClient(ws, threaded=False)


def both(frame: str) -> tuple[str, str]:
    """The closing strings of the end that received ``frame`` first, and of the other."""
    return f"received {frame}; then sent {frame}", f"sent {frame}; then received {frame}"


# anyws client -> websockets server --------------------------------------------------


async def test_client_echo(flavour: str) -> None:
    """Text, binary, unicode and empty messages go through and come back unchanged."""
    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour) as peer, anyws.connect(peer.uri) as ws:
            for message in MESSAGES:
                await ws.send(message)
                echo = await ws.recv()
                assert echo == message
                assert type(echo) is type(message)
            for buffer in (bytearray(b"array"), memoryview(b"view")):
                await ws.send(buffer)
                assert await ws.recv() == bytes(buffer)
            await ws.send(b"caf\xc3\xa9", text=True)
            assert await ws.recv() == "café"
            await ws.send("as binary", text=False)
            assert await ws.recv() == b"as binary"
    # Leaving connect() closed with 1000; websockets received it first.
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (1000, "")
    assert isinstance(seen.closed, WsClosedOK)
    assert str(seen.closed) == "received 1000 (OK); then sent 1000 (OK)"


async def test_client_large_message(flavour: str) -> None:
    """1 MiB messages, binary and text, with max_size raised on both sides."""
    binary = os.urandom(MiB)
    text = "é" * (MiB // 2)  # 1 MiB in UTF-8
    with anyio.fail_after(TIMEOUT):
        async with (
            websockets_server(flavour, max_size=2 * MiB) as peer,
            anyws.connect(peer.uri, max_size=2 * MiB) as ws,
        ):
            await ws.send(binary)
            assert await ws.recv() == binary
            await ws.send(text)
            assert await ws.recv() == text


async def test_client_message_too_big(flavour: str) -> None:
    """websockets fails the connection with 1009 on a message above its max_size."""
    with anyio.fail_after(TIMEOUT):
        async with (
            websockets_server(flavour, max_size=MiB) as peer,
            anyws.connect(peer.uri, max_size=2 * MiB) as ws,
        ):
            await ws.send(bytes(MiB + 1))
            with pytest.raises(anyws.ConnectionClosedError) as info:
                await ws.recv()
            assert ws.close_code == 1009
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
    assert isinstance(peer.only().closed, WsClosedError)


async def test_client_fragmented_message(flavour: str) -> None:
    """A message sent from an (async) iterable is fragmented; websockets reassembles it."""

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"a" * 10, b"b" * 20, b"c"):
            yield chunk

    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour) as peer, anyws.connect(peer.uri) as ws:
            await ws.send(["frag", "ment", "ed ✓"])
            assert await ws.recv() == "fragmented ✓"
            # A character split between two frames.
            await ws.send([b"check \xe2\x9c", b"\x93"], text=True)
            assert await ws.recv() == "check ✓"
            # Count the frames on websockets' side.
            await ws.send("!streaming")
            await ws.send(chunks())
            assert await ws.recv() == b"a" * 10 + b"b" * 20 + b"c"
            # Each item goes out as it comes, then an empty frame carrying FIN.
            assert await ws.recv() == "4 fragments"
            await ws.send("!streaming")
            await ws.send(["x", "y", "z", "✓"])
            assert await ws.recv() == "xyz✓"
            assert await ws.recv() == "4 fragments"


async def test_client_subprotocol(flavour: str) -> None:
    """The server's preference wins among the subprotocols both sides support."""
    with anyio.fail_after(TIMEOUT):
        async with (
            websockets_server(flavour, subprotocols=["chat.v2", "chat.v1"]) as peer,
            anyws.connect(peer.uri, subprotocols=["chat.v1", "chat.v2", "other"]) as ws,
        ):
            assert ws.subprotocol == "chat.v2"
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
            await ws.send("hello")
            assert await ws.recv() == "hello"
    assert peer.only().subprotocol == "chat.v2"


async def test_client_ping(flavour: str) -> None:
    """websockets answers anyws' pings: the awaitable gives the round-trip time."""
    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour) as peer, anyws.connect(peer.uri) as ws:
            # The pong came back, or this would time out.
            # anyws times round trips with time.perf_counter: never 0.0, uvloop or not.
            latency = await (await ws.ping())
            assert_latency(latency, coarse_clock=False)
            assert_latency(await (await ws.ping(b"custom")), coarse_clock=False)
            assert_latency(await (await ws.ping("text")), coarse_clock=False)
            await ws.send("still open")
            assert await ws.recv() == "still open"


@pytest.mark.parametrize(
    ("code", "reason", "frame"),
    [
        pytest.param(1000, "", "1000 (OK)", id="1000"),
        pytest.param(1000, "bye ✓", "1000 (OK) bye ✓", id="1000-reason"),
        pytest.param(1001, "", "1001 (going away)", id="1001"),
        pytest.param(4321, "custom", "4321 (private use) custom", id="4321"),
    ],
)
async def test_client_closes(flavour: str, code: int, reason: str, frame: str) -> None:
    """anyws closes: websockets sees the code and reason, and echoes them."""
    ok = code in (1000, 1001)
    received_first, sent_first = both(frame)
    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour) as peer, anyws.connect(peer.uri) as ws:
            start = anyio.current_time()
            await ws.close(code, reason)
            # websockets, the server, closed TCP at once (RFC 6455, 7.1.1): no timeout.
            assert anyio.current_time() - start < CLOSE_TIMEOUT / 2
            assert ws.state is anyws.State.CLOSED
            assert (ws.close_code, ws.close_reason) == (code, reason)
            with pytest.raises(
                anyws.ConnectionClosedOK if ok else anyws.ConnectionClosedError
            ) as info:
                await ws.recv()
            assert str(info.value) == sent_first
            with pytest.raises(anyws.ConnectionClosed):
                await ws.send("too late")
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (code, reason)
    assert isinstance(seen.closed, WsClosedOK if ok else WsClosedError)
    assert str(seen.closed) == received_first


@pytest.mark.parametrize(
    ("code", "reason", "frame"),
    [
        pytest.param(1000, "", "1000 (OK)", id="1000"),
        pytest.param(1000, "bye ✓", "1000 (OK) bye ✓", id="1000-reason"),
        pytest.param(1011, "oops", "1011 (internal error) oops", id="1011"),
    ],
)
async def test_server_closes_client(flavour: str, code: int, reason: str, frame: str) -> None:
    """websockets closes: anyws echoes the close frame and its recv raises accordingly.

    anyws received the close frame first, so ``received X; then sent X`` (the echo):
    `ConnectionClosedOK` for 1000, `ConnectionClosedError` for 1011.
    """
    ok = code == 1000
    received_first, sent_first = both(frame)
    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour) as peer, anyws.connect(peer.uri) as ws:
            await ws.send(f"!close {code} {reason}")
            with pytest.raises(
                anyws.ConnectionClosedOK if ok else anyws.ConnectionClosedError
            ) as info:
                await ws.recv()
            assert str(info.value) == received_first
            assert ws.state is anyws.State.CLOSED
            assert (ws.close_code, ws.close_reason) == (code, reason)
            # Iterating a connection ends quietly on a normal close only.
            if ok:
                assert [message async for message in ws] == []
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (code, reason)
    assert isinstance(seen.closed, WsClosedOK if ok else WsClosedError)
    assert str(seen.closed) == sent_first


async def test_server_shutdown_closes_client(flavour: str) -> None:
    """Shutting the websockets server down closes anyws' connection with 1001 (going away)."""
    if flavour == "sync" and int(websockets.__version__.split(".")[0]) < 17:
        # Seen with 16.1.1 (the newest release for Python 3.10): the sync server's
        # shutdown() leaves open connections alone, so there is no 1001 to check.
        pytest.skip("websockets' sync server closes connections on shutdown from 17.0")
    received_first, _ = both("1001 (going away)")
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:  # exits after the server
            async with websockets_server(flavour) as peer:
                ws = await stack.enter_async_context(anyws.connect(peer.uri))
                await ws.send("hello")
                assert await ws.recv() == "hello"
            with pytest.raises(anyws.ConnectionClosedOK) as info:
                await ws.recv()
            assert str(info.value) == received_first
            assert ws.close_code == 1001


async def test_client_keepalive(flavour: str) -> None:
    """anyws' keepalive pings get websockets' pongs: latency is measured.

    Without pongs, the keepalive would fail the connection 0.1 + 0.3 s after it opened.
    """
    with anyio.fail_after(TIMEOUT):
        async with (
            websockets_server(flavour) as peer,
            anyws.connect(peer.uri, ping_interval=100 * MS, ping_timeout=300 * MS) as ws,
        ):
            await anyio.sleep(600 * MS)  # about five keepalive pings
            assert ws.state is anyws.State.OPEN
            assert_latency(ws.latency, coarse_clock=False)  # time.perf_counter, as above
            await ws.send("still open")
            assert await ws.recv() == "still open"
            assert ws.state is anyws.State.OPEN
    assert str(peer.only().closed) == "received 1000 (OK); then sent 1000 (OK)"


# websockets client -> anyws server --------------------------------------------------


async def test_server_echo(flavour: str) -> None:
    """Text, binary, unicode and empty messages go through and come back unchanged."""
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            # websockets offers permessage-deflate by default; anyws accepts it with its
            # memory-saving server settings.
            assert client.ws.response.headers.get("Sec-WebSocket-Extensions") == (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            )
            for message in MESSAGES:
                await client.send(message)
                echo = await client.recv()
                assert echo == message
                assert type(echo) is type(message)
    # Leaving websockets' connect() closed with 1000; anyws received it first.
    assert client.ws.close_code == 1000
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (1000, "")
    assert isinstance(seen.closed, anyws.ConnectionClosedOK)
    assert str(seen.closed) == "received 1000 (OK); then sent 1000 (OK)"


async def test_server_large_message(flavour: str) -> None:
    """1 MiB messages, binary and text, with max_size raised on both sides."""
    binary = os.urandom(MiB)
    text = "é" * (MiB // 2)  # 1 MiB in UTF-8
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws_server(max_size=2 * MiB) as peer,
            websockets_client(flavour, peer.uri, max_size=2 * MiB) as client,
        ):
            await client.send(binary)
            assert await client.recv() == binary
            await client.send(text)
            assert await client.recv() == text


async def test_server_message_too_big(flavour: str) -> None:
    """anyws fails the connection with 1009 on a message above its max_size."""
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws_server(max_size=MiB) as peer,
            websockets_client(flavour, peer.uri, max_size=2 * MiB) as client,
        ):
            await client.send(bytes(MiB + 1))
            with pytest.raises(WsClosedError) as info:
                await client.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
            assert client.ws.close_code == 1009
    assert isinstance(peer.only().closed, anyws.ConnectionClosedError)


async def test_server_fragmented_message(flavour: str) -> None:
    """A message that websockets sends from an iterable is fragmented; anyws reassembles it."""
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            await client.send(["frag", "ment", "ed ✓"])
            assert await client.recv() == "fragmented ✓"
            await client.send([b"a" * 10, b"b" * 20, b"c"])
            assert await client.recv() == b"a" * 10 + b"b" * 20 + b"c"
            # Count the frames on anyws' side. websockets doesn't look ahead: it sends
            # each fragment without FIN, then an empty frame with FIN.
            await client.send("!streaming")
            await client.send([b"a" * 10, b"b" * 20, b"c"])
            assert await client.recv() == b"a" * 10 + b"b" * 20 + b"c"
            assert await client.recv() == "4 fragments"
            await client.send("!streaming")
            await client.send(["x", "y", "z", "✓"])
            assert await client.recv() == "xyz✓"
            assert await client.recv() == "5 fragments"


@pytest.mark.parametrize("offered", [["other"], None], ids=["other", "none"])
async def test_client_subprotocol_mismatch(flavour: str, offered: list[str] | None) -> None:
    """A websockets server naming subprotocols rejects anyws offering none of them: 400."""
    with anyio.fail_after(TIMEOUT):
        async with websockets_server(flavour, subprotocols=["chat.v2", "chat.v1"]) as peer:
            with pytest.raises(anyws.InvalidStatus) as info:
                async with anyws.connect(peer.uri, subprotocols=offered):
                    pytest.fail("the handshake should have failed")  # pragma: no cover
    why = "missing subprotocol" if offered is None else SUBPROTOCOL_EXPECTED
    assert info.value.response.status_code == 400
    assert info.value.response.body == f"Failed to open a WebSocket connection: {why}.\n".encode()
    assert peer.seen == []


#: Why websockets and anyws reject a client that offers subprotocols, but none of theirs.
SUBPROTOCOL_EXPECTED = "invalid subprotocol; expected one of chat.v2, chat.v1"


@pytest.mark.parametrize("offered", [["other"], None], ids=["other", "none"])
async def test_server_subprotocol_mismatch(flavour: str, offered: list[str] | None) -> None:
    """anyws naming subprotocols rejects a websockets client offering none of them, as
    websockets does: 400, with websockets' words."""
    with anyio.fail_after(TIMEOUT):
        async with anyws_server(subprotocols=["chat.v2", "chat.v1"]) as peer:
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with websockets_client(flavour, peer.uri, subprotocols=offered):
                    pytest.fail("the handshake should have failed")  # pragma: no cover
    why = "missing subprotocol" if offered is None else SUBPROTOCOL_EXPECTED
    assert info.value.response.status_code == 400
    assert info.value.response.body == f"Failed to open a WebSocket connection: {why}.\n".encode()
    assert peer.seen == []


async def test_server_select_subprotocol_allows_none(flavour: str) -> None:
    """select_subprotocol may go on without a subprotocol, as in websockets."""
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws_server(
                subprotocols=["chat.v2"],
                select_subprotocol=lambda connection, offered: (
                    "chat.v2" if "chat.v2" in offered else None
                ),
            ) as peer,
            websockets_client(flavour, peer.uri) as client,
        ):
            assert client.ws.subprotocol is None
            await client.send("hello")
            assert await client.recv() == "hello"


async def test_server_subprotocol(flavour: str) -> None:
    """The server's preference wins among the subprotocols both sides support."""
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws_server(subprotocols=["chat.v2", "chat.v1"]) as peer,
            websockets_client(
                flavour, peer.uri, subprotocols=["chat.v1", "chat.v2", "other"]
            ) as client,
        ):
            assert client.ws.subprotocol == "chat.v2"
            await client.send("hello")
            assert await client.recv() == "hello"
    assert peer.only().subprotocol == "chat.v2"


async def test_server_answers_ping(flavour: str) -> None:
    """anyws answers websockets' pings with pongs, automatically."""
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            # The pong came back, or this would time out.
            coarse_clock = flavour == "asyncio" and coarse_loop_clock()
            assert_latency(await client.ping(), coarse_clock=coarse_clock)
            assert_latency(await client.ping(b"custom"), coarse_clock=coarse_clock)
            await client.send("still open")
            assert await client.recv() == "still open"
    assert str(peer.only().closed) == "received 1000 (OK); then sent 1000 (OK)"


@pytest.mark.parametrize(
    ("code", "reason", "frame"),
    [
        pytest.param(1000, "", "1000 (OK)", id="1000"),
        pytest.param(1000, "bye ✓", "1000 (OK) bye ✓", id="1000-reason"),
        pytest.param(1001, "", "1001 (going away)", id="1001"),
        pytest.param(4321, "custom", "4321 (private use) custom", id="4321"),
    ],
)
async def test_websockets_client_closes(flavour: str, code: int, reason: str, frame: str) -> None:
    """websockets closes: anyws sees the code and reason, and echoes them."""
    ok = code in (1000, 1001)
    received_first, sent_first = both(frame)
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            start = anyio.current_time()
            await client.close(code, reason)
            # anyws, the server, closed TCP at once (RFC 6455, 7.1.1): no timeout.
            assert anyio.current_time() - start < CLOSE_TIMEOUT / 2
            assert client.ws.state is websockets.protocol.State.CLOSED
            assert (client.ws.close_code, client.ws.close_reason) == (code, reason)
            with pytest.raises(WsClosedOK if ok else WsClosedError) as info:
                await client.recv()
            assert str(info.value) == sent_first
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (code, reason)
    assert isinstance(seen.closed, anyws.ConnectionClosedOK if ok else anyws.ConnectionClosedError)
    assert str(seen.closed) == received_first


@pytest.mark.parametrize(
    ("code", "reason", "frame"),
    [
        pytest.param(1000, "", "1000 (OK)", id="1000"),
        pytest.param(1000, "bye ✓", "1000 (OK) bye ✓", id="1000-reason"),
        pytest.param(1011, "oops", "1011 (internal error) oops", id="1011"),
    ],
)
async def test_anyws_server_closes(flavour: str, code: int, reason: str, frame: str) -> None:
    """anyws closes: websockets echoes the close frame and its recv raises accordingly."""
    ok = code == 1000
    received_first, sent_first = both(frame)
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            await client.send(f"!close {code} {reason}")
            with pytest.raises(WsClosedOK if ok else WsClosedError) as info:
                await client.recv()
            assert str(info.value) == received_first
            assert (client.ws.close_code, client.ws.close_reason) == (code, reason)
    seen = peer.only()
    assert (seen.close_code, seen.close_reason) == (code, reason)
    assert isinstance(seen.closed, anyws.ConnectionClosedOK if ok else anyws.ConnectionClosedError)
    assert str(seen.closed) == sent_first


async def test_anyws_handler_raises(flavour: str, caplog: pytest.LogCaptureFixture) -> None:
    """A handler that raises closes the connection with 1011, and the error is logged."""
    received_first, _ = both("1011 (internal error)")
    caplog.set_level(logging.ERROR, logger="anyws")
    with anyio.fail_after(TIMEOUT):
        async with anyws_server() as peer, websockets_client(flavour, peer.uri) as client:
            await client.send("!raise")
            with pytest.raises(WsClosedError) as info:
                await client.recv()
            assert str(info.value) == received_first
            assert client.ws.close_code == 1011
    assert peer.only().closed is None
    [record] = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Boom)


async def test_anyws_process_request_rejects(flavour: str) -> None:
    """process_request returning a 403: websockets raises InvalidStatus; no handler runs."""

    def forbid(connection: anyws.ServerConnection, request: anyws.Request) -> anyws.Response:
        assert request.path == "/private"
        return connection.respond(403, "Forbidden\n")

    with anyio.fail_after(TIMEOUT):
        async with anyws_server(process_request=forbid) as peer:
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with websockets_client(flavour, peer.uri + "private"):
                    pytest.fail("the handshake should have failed")  # pragma: no cover
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"Forbidden\n"
    assert str(info.value) == "server rejected WebSocket connection: HTTP 403"
    assert peer.seen == []


async def test_websockets_client_keepalive(flavour: str) -> None:
    """websockets' keepalive pings get anyws' pongs; the connection stays open, then closes.

    Without pongs, websockets would fail the connection 0.1 + 0.3 s after it opened.
    """
    with anyio.fail_after(TIMEOUT):
        async with (
            anyws_server() as peer,
            websockets_client(
                flavour, peer.uri, ping_interval=100 * MS, ping_timeout=300 * MS
            ) as client,
        ):
            await anyio.sleep(600 * MS)  # about five keepalive pings
            assert client.ws.state is websockets.protocol.State.OPEN
            coarse_clock = flavour == "asyncio" and coarse_loop_clock()
            assert_latency(client.ws.latency, coarse_clock=coarse_clock)
            await client.send("still open")
            assert await client.recv() == "still open"
    assert client.ws.close_code == 1000
    seen = peer.only()
    assert isinstance(seen.closed, anyws.ConnectionClosedOK)
    assert str(seen.closed) == "received 1000 (OK); then sent 1000 (OK)"
