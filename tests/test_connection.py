"""The connection layer over in-memory streams, as a user sees it, on every backend.

Each test opens a real client and server with `anyws.testing.connection_pair`, usually
through `pair`, which also checks that no anyws task outlives the pair. Streams come from
`memory_stream_pair` (unbounded) or `lockstep_stream_pair` (no buffer), whose controls
make the peer misbehave: ``swallow`` (black hole), ``paused`` (stops reading), ``reset``.
On a stream, a control acts on what *that* side sends: ``server_stream.swallow = True``
means the client never hears from the server again.

Synchronisation is by `settle` (`anyio.wait_all_tasks_blocked`, without its polling sleeps
on asyncio), events and the stream controls; never by sleeping.
Keepalive and timeout tests run under virtual time (``@pytest.mark.autojump``, trio), and
most also in real time with small values on every backend, under a generous
`anyio.fail_after` so that a hang fails fast.

A test that reveals a bug of the library is marked
``xfail(strict=True, reason="bug: ...")`` until the bug is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.abc
import pytest

from anyws import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    PayloadTooBig,
    ProtocolError,
    State,
)
from anyws.testing import (
    MemoryByteStream,
    connection_pair,
    lockstep_stream_pair,
    memory_stream_pair,
)

from .conftest import MS, unnamed


Streams = tuple[MemoryByteStream, MemoryByteStream]

#: Real-time values for the real-time variants of timing tests, in seconds.
REAL_TIMEOUT = 20 * MS
#: A bound on any real-time test: a hang fails fast instead of at faulthandler's 60 s.
HANG = 10


# Helpers -------------------------------------------------------------------------


async def settle() -> None:
    """`anyio.wait_all_tasks_blocked`, minus its 0.1 s polling sleeps on asyncio.

    Returns once every other task waits on something (an event, a stream, a timer).
    anyio's asyncio version sleeps 0.1 s whenever a task is still runnable, which would
    make this file several times slower; this one yields to the event loop instead, with
    the same test of "blocked". On trio it is anyio's (trio's own, exact) version.
    """
    try:
        this = asyncio.current_task()
    except RuntimeError:  # not asyncio
        await anyio.wait_all_tasks_blocked()
        return

    def runnable(task: asyncio.Task[Any]) -> bool:
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        return task is not this and (waiter is None or waiter.done())

    await anyio.lowlevel.checkpoint()
    while any(runnable(task) for task in asyncio.all_tasks()):  # noqa: ASYNC110
        await asyncio.sleep(0)


def anyws_tasks() -> list[str]:
    """The names of the running tasks that anyws started."""
    return sorted(task.name for task in anyio.get_running_tasks() if task.name.startswith("anyws "))


@contextlib.asynccontextmanager
async def pair(
    streams: Streams | None = None,
    *,
    client: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    bound: float = HANG,
) -> AsyncIterator[tuple[Any, Any]]:
    """`connection_pair` with keyword options, bounded by ``bound``; no task may outlive it.

    Compression is off unless asked for: these tests count bytes and frames.
    """
    before = anyws_tasks()
    client = {"compression": None, **(client or {})}
    server = {"compression": None, **(server or {})}
    with anyio.fail_after(bound):
        async with connection_pair(
            streams=streams, client_options=client, server_options=server
        ) as (client_connection, server_connection):
            yield client_connection, server_connection
    assert anyws_tasks() == before


class Job:
    """The outcome of a call run in the background by `spawn`."""

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.exc: Exception | None = None
        self.finished = anyio.Event()

    async def wait(self) -> Any:
        await self.finished.wait()
        return self.result


def spawn(task_group: anyio.abc.TaskGroup, fn: Callable[..., Awaitable[Any]], *args: Any) -> Job:
    """Start ``fn(*args)`` in ``task_group``; its result or exception lands in the `Job`."""
    job = Job()

    async def run() -> None:
        try:
            job.result = await fn(*args)
        except Exception as exc:
            job.exc = exc
        finally:
            job.done = True
            job.finished.set()

    task_group.start_soon(run)
    return job


async def agen(
    items: Iterable[Any], gates: dict[int, anyio.Event] | None = None
) -> AsyncIterator[Any]:
    """Yield ``items`` with a checkpoint before each; wait for ``gates[i]`` before ``items[i]``."""
    for index, item in enumerate(items):
        if gates and index in gates:
            await gates[index].wait()
        else:
            await anyio.lowlevel.checkpoint()
        yield item


async def collect(connection: Any, decode: bool | None = None) -> list[Any]:
    """The fragments of the next message, as `recv_streaming` yields them."""
    return [fragment async for fragment in connection.recv_streaming(decode)]


class LogCounter(logging.Handler):
    """Sets ``reached`` once ``count`` records with the message ``message`` were logged."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(logging.DEBUG)
        self.message = message
        self.count = count
        self.reached = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if unnamed(record.getMessage()) == self.message:
            self.count -= 1
            if self.count <= 0:
                self.reached.set()


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [unnamed(record.getMessage()) for record in caplog.records if record.name == logger]


# 1. API --------------------------------------------------------------------------


async def test_send_str_and_bytes_like() -> None:
    """str is text, bytes-likes are binary, in both directions (masked and not)."""
    async with pair() as (client, server):
        for sender, receiver in [(client, server), (server, client)]:
            await _send_str_and_bytes_like(sender, receiver)


async def _send_str_and_bytes_like(sender: Any, receiver: Any) -> None:
    await sender.send("café")
    await sender.send(b"\x00\xff")
    await sender.send(bytearray(b"array"))
    await sender.send(memoryview(b"<view>")[1:5])
    await sender.send("")
    await sender.send(b"")
    received = [await receiver.recv() for _ in range(6)]
    assert received == ["café", b"\x00\xff", b"array", b"view", "", b""]
    assert [type(message) for message in received] == [str, bytes, bytes, bytes, str, bytes]


async def test_send_text_flag_overrides_the_type() -> None:
    async with pair() as (client, server):
        await client.send(b"caf\xc3\xa9", text=True)
        await client.send("café", text=False)
        await client.send(memoryview(b"mv"), text=True)
        await client.send("str", text=True)
        await client.send(b"bin", text=False)
        assert await server.recv() == "café"
        assert await server.recv() == "café".encode()
        assert await server.recv() == "mv"
        assert await server.recv() == "str"
        assert await server.recv() == b"bin"


async def test_send_unsupported_type() -> None:
    async with pair() as (client, server):
        with pytest.raises(TypeError) as exc_info:
            await client.send(42)
        assert str(exc_info.value) == "message has unsupported type int"
        assert client.state is State.OPEN
        await client.send("still open")
        assert await server.recv() == "still open"


async def test_send_fragments_as_one_message() -> None:
    """Each item becomes one frame of one fragmented message."""
    async with pair() as (client, server):
        for source in (iter, agen):
            await _send_fragments_as_one_message(client, server, source)


async def _send_fragments_as_one_message(client: Any, server: Any, source: Any) -> None:
    # An iterable is read one ahead, so its last item carries FIN; an async
    # iterable's items go out as they come, and an empty frame ends the message.
    text_end: list[str] = [""] if source is agen else []
    bytes_end: list[bytes] = [b""] if source is agen else []
    await client.send(source(["ab", "", "cd", "é"]))
    await client.send(source([b"ab", bytearray(b"cd"), memoryview(b"ef")]))
    await client.send(source([b"caf\xc3", b"\xa9"]), text=True)
    await client.send(source(["as ", "bytes"]), text=False)
    await client.send(source(["single"]))
    assert await collect(server) == ["ab", "", "cd", "é", *text_end]
    assert await collect(server) == [b"ab", b"cd", b"ef", *bytes_end]
    assert await collect(server) == ["caf", "é", *text_end]
    assert await collect(server) == [b"as ", b"bytes", *bytes_end]
    assert await collect(server) == ["single", *text_end]
    # recv() joins the fragments.
    await client.send(source(["jo", "in", "ed"]))
    await client.send(source([b"jo", b"in"]))
    assert await server.recv() == "joined"
    assert await server.recv() == b"join"


async def test_send_empty_iterable_sends_nothing() -> None:
    async with pair() as (client, server):
        await client.send([])
        await client.send(agen([]))
        await client.send("next")
        assert await collect(server) == ["next"]
        assert client.state is State.OPEN


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("iterable", ["text", b"bytes"]),
        ("async iterable", [b"bytes", "text"]),
        ("iterable", ["a", "b", bytearray(b"c")]),
        ("async iterable", ["a", "b", memoryview(b"c")]),
    ],
    ids=["str-then-bytes", "bytes-then-str-async", "late-mix", "late-mix-async"],
)
async def test_send_fragments_mixing_str_and_bytes(kind: str, fragments: list[Any]) -> None:
    """TypeError, and since part of a message went out, the connection fails with 1011."""
    async with pair() as (client, server):
        source = iter(fragments) if kind == "iterable" else agen(fragments)
        with pytest.raises(TypeError) as exc_info:
            await client.send(source)
        assert str(exc_info.value) == "all fragments must be of the same type: str or bytes-like"
        with pytest.raises(ConnectionClosedError) as closed:
            await server.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1011
        assert closed.value.rcvd.reason == "error in fragmented message"
        assert str(closed.value) == (
            "received 1011 (internal error) error in fragmented message; "
            "then sent 1011 (internal error) error in fragmented message"
        )
        # Failing the connection ignores the peer's answer (RFC 6455, 7.1.7).
        with pytest.raises(ConnectionClosedError) as failed:
            await client.send("after")
        assert str(failed.value) == (
            "sent 1011 (internal error) error in fragmented message; no close frame received"
        )
        await client.wait_closed()
        assert client.close_code == 1006


async def test_send_iterable_of_unsupported_type_sends_nothing() -> None:
    """Nothing went out, so the TypeError doesn't fail the connection."""
    async with pair() as (client, server):
        with pytest.raises(TypeError) as exc_info:
            await client.send([42])
        assert str(exc_info.value) == "message has unsupported type int"
        assert client.state is State.OPEN
        await client.send("still open")
        assert await server.recv() == "still open"


async def test_send_iterator_error_before_first_fragment_sends_nothing() -> None:
    """An iterator that fails before yielding anything leaves the connection open."""

    def failing() -> Iterable[str]:
        raise ValueError("no fragments")
        yield "unreachable"  # pragma: no cover

    async with pair() as (client, server):
        with pytest.raises(ValueError, match="no fragments"):
            await client.send(failing())
        assert client.state is State.OPEN
        await client.send("ok")
        assert await server.recv() == "ok"


async def test_recv_decode() -> None:
    async with pair() as (client, server):
        await client.send("text é")
        await client.send(b"binary \xc3\xa9")
        await client.send("text é")
        await client.send(b"binary \xc3\xa9")
        assert await server.recv(decode=False) == "text é".encode()
        assert await server.recv(decode=True) == "binary é"
        assert await server.recv(decode=None) == "text é"
        assert await server.recv(decode=None) == b"binary \xc3\xa9"


async def test_recv_streaming_decode() -> None:
    async with pair() as (client, server):
        await client.send(["té", "xt"])
        await client.send([b"bin", b"\xc3\xa9"])
        await client.send(["té", "xt"])
        assert await collect(server, decode=False) == ["té".encode(), b"xt"]
        assert await collect(server, decode=True) == ["bin", "é"]
        assert await collect(server, decode=None) == ["té", "xt"]


async def test_recv_streaming_yields_fragments_as_they_arrive() -> None:
    """The first fragment is yielded before the sender has produced the last one."""
    more = anyio.Event()
    async with pair() as (client, server), anyio.create_task_group() as tg:
        # Fragments of an async iterable go out as the iterator produces them.
        sending = spawn(tg, client.send, agen(["a", "b", "c"], {2: more}))
        async with contextlib.aclosing(server.recv_streaming()) as fragments:
            assert await anext(fragments) == "a"
            assert await anext(fragments) == "b"
            await settle()
            assert not sending.done  # "c" doesn't exist yet
            more.set()
            # An empty frame carrying FIN ends the message.
            assert [fragment async for fragment in fragments] == ["c", ""]
        await sending.wait()
        assert sending.exc is None


async def test_recv_streaming_decodes_a_character_split_across_frames() -> None:
    async with pair() as (client, server):
        # "é" is \xc3\xa9, "€" is \xe2\x82\xac, "😀" is \xf0\x9f\x98\x80.
        await client.send(
            [b"caf\xc3", b"\xa9 \xe2", b"\x82", b"\xac \xf0\x9f\x98", b"\x80"], text=True
        )
        assert await collect(server) == ["caf", "é ", "", "€ ", "😀"]


async def test_async_for_ends_on_normal_close() -> None:
    async with pair() as (client, server):
        await server.send("a")
        await server.send(b"b")
        await server.close()
        assert [message async for message in client] == ["a", b"b"]
        assert client.state is State.CLOSED


async def test_async_for_raises_on_abnormal_close() -> None:
    async with pair() as (client, server):
        await server.send("a")
        await server.close(4001, "nope")
        received = []
        with pytest.raises(ConnectionClosedError) as exc_info:  # noqa: PT012
            async for message in client:
                received.append(message)  # noqa: PERF401
        assert received == ["a"]
        assert str(exc_info.value) == (
            "received 4001 (private use) nope; then sent 4001 (private use) nope"
        )


async def test_two_readers_raise_concurrency_error() -> None:
    async def call(connection: Any, method: str) -> Any:
        if method == "recv":
            return await connection.recv()
        return await collect(connection)

    async with pair() as (client, server):
        for first, second in [
            ("recv", "recv"),
            ("recv", "recv_streaming"),
            ("recv_streaming", "recv"),
            ("recv_streaming", "recv_streaming"),
        ]:
            async with anyio.create_task_group() as tg:
                waiting = spawn(tg, call, server, first)
                await settle()
                with pytest.raises(ConcurrencyError) as exc_info:
                    await call(server, second)
                assert str(exc_info.value) == (
                    f"cannot call {second} while another task is already running "
                    "recv or recv_streaming"
                )
                # The first reader is unaffected.
                await client.send(["x", "y"])
                assert await waiting.wait() == ("xy" if first == "recv" else ["x", "y"])


async def test_concurrent_sends_never_interleave_fragments() -> None:
    """Many tasks send fragmented and whole messages at once over a clogged stream."""
    streams = lockstep_stream_pair()
    expected: dict[str, list[str]] = {}
    async with pair(streams, client={"write_limit": 1}) as (client, server):
        async with anyio.create_task_group() as tg:
            for task in range(8):
                fragments = [f"{task}:{index};" for index in range(5)]
                expected[fragments[0]] = [*fragments, ""]  # an empty frame ends it
                tg.start_soon(client.send, agen(fragments))
                whole = f"{task}:whole"
                expected[whole] = [whole]
                tg.start_soon(client.send, whole)
            received = [await collect(server) for _ in range(16)]
        assert sorted(received) == sorted(expected.values())
        assert client.state is State.OPEN


async def test_ping_returns_an_awaitable_latency() -> None:
    async with pair() as (client, server):
        for connection in (client, server):
            waiter = await connection.ping()
            latency = await waiter
            assert isinstance(latency, float)
            assert latency >= 0
            assert isinstance(await (await connection.ping(b"bytes")), float)
            assert isinstance(await (await connection.ping("text")), float)


async def test_ping_with_a_pending_payload_raises_concurrency_error() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, _server):
        server_stream.swallow = True  # the pongs never arrive
        await client.ping(b"same")
        with pytest.raises(ConcurrencyError) as exc_info:
            await client.ping(b"same")
        assert str(exc_info.value) == "already waiting for a pong with the same data"
        await client.ping(b"other")


async def test_ping_with_a_pending_text_payload_raises_concurrency_error() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, _server), anyio.create_task_group() as tg:
        server_stream.swallow = True  # the first pong is lost
        first = spawn(tg, (await client.ping("same")).wait)
        await settle()
        server_stream.swallow = False
        try:
            with pytest.raises(ConcurrencyError):
                await client.ping("same")
        finally:
            # Either way, the pong of a later ping must resolve the first waiter.
            await (await client.ping(b"later"))
            await settle()
            assert first.done


async def test_pong_answers_earlier_pings_too() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, _server), anyio.create_task_group() as tg:
        server_stream.swallow = True  # the first pong is lost
        first = spawn(tg, (await client.ping(b"first")).wait)
        await settle()  # the server answered it into the void
        assert not first.done
        server_stream.swallow = False
        second = await (await client.ping(b"second"))
        assert isinstance(await first.wait(), float)
        assert first.result >= second >= 0
        assert client.latency == second  # latency follows the ping the pong matched


async def test_pong_resolves_a_matching_ping() -> None:
    client_stream, _server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, server), anyio.create_task_group() as tg:
        client_stream.swallow = True  # the automatic pong is lost
        waiting = spawn(tg, (await server.ping(b"payload")).wait)
        await settle()
        assert not waiting.done
        client_stream.swallow = False
        await client.pong(b"unrelated")
        await settle()
        assert not waiting.done
        await client.pong("payload")
        assert isinstance(await waiting.wait(), float)
        await client.pong()  # empty, unsolicited: harmless
        await client.send("still fine")
        assert await server.recv() == "still fine"


async def test_ping_waiter_raises_when_the_connection_closes() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, _server):
        server_stream.swallow = True
        waiter = await client.ping()
        server_stream.reset()
        with pytest.raises(ConnectionClosedError) as exc_info:
            await waiter
        assert str(exc_info.value) == "no close frame received or sent"
        assert isinstance(exc_info.value.__cause__, ConnectionResetError)


@pytest.mark.autojump
async def test_latency_is_updated_by_keepalive_pongs(mock_clock: Any) -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {"ping_interval": 10, "ping_timeout": 5}
    async with pair(streams, client=options, server={"ping_interval": None}, bound=100) as (
        client,
        _server,
    ):
        assert client.latency == 0
        server_stream.paused = True  # hold the pong back...
        await anyio.sleep(12)  # ...the keepalive ping went out at t=10
        assert client.latency == 0
        server_stream.paused = False  # the pong arrives at t=12
        await settle()
        assert client.latency == pytest.approx(2)
        assert client.state is State.OPEN


async def test_properties() -> None:
    async with pair() as (client, server):
        for connection in (client, server):
            assert connection.state is State.OPEN
            assert connection.close_code is None
            assert connection.close_reason is None
            assert isinstance(connection.id, uuid.UUID)
            assert connection.subprotocol is None
            assert connection.local_address is None
            assert connection.remote_address is None
            assert connection.latency == 0
        assert client.id != server.id
        assert client.request is not None
        assert client.request.path == "/"
        assert client.request.headers["Host"] == "localhost"
        assert server.request is not None
        assert (
            server.request.headers["Sec-WebSocket-Key"]
            == (client.request.headers["Sec-WebSocket-Key"])
        )
        assert client.response is not None
        assert client.response.status_code == 101
        assert server.response is not None
        assert (
            server.response.headers["Sec-WebSocket-Accept"]
            == (client.response.headers["Sec-WebSocket-Accept"])
        )
        await client.close(4000, "done")
        for connection in (client, server):
            assert connection.state is State.CLOSED
            assert connection.close_code == 4000
            assert connection.close_reason == "done"


async def test_subprotocol() -> None:
    async with pair(
        client={"subprotocols": ["chat", "superchat"]}, server={"subprotocols": ["superchat"]}
    ) as (client, server):
        assert client.subprotocol == "superchat"
        assert server.subprotocol == "superchat"


async def test_state_is_closing_during_the_closing_handshake() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, _server), anyio.create_task_group() as tg:
        server_stream.paused = True  # the server's echo is held back
        closing = spawn(tg, client.close)
        await settle()
        assert not closing.done
        assert client.state is State.CLOSING
        assert client.close_code is None
        assert client.close_reason is None
        server_stream.paused = False
        await closing.wait()
        assert client.state is State.CLOSED
        assert client.close_code == 1000
        assert client.close_reason == ""


# 2. Lost TCP connection ----------------------------------------------------------

LOSSES = {
    # How the peer goes away, and the __cause__ it leaves.
    "eof": (lambda stream: stream.aclose(), EOFError),
    "send_eof": (lambda stream: stream.send_eof(), EOFError),
    "reset": (lambda stream: _reset(stream), ConnectionResetError),
}


async def _reset(stream: MemoryByteStream) -> None:
    stream.reset()


@pytest.mark.parametrize(
    ("victim", "loss"),
    [("client", "eof"), ("server", "send_eof"), ("client", "reset"), ("server", "reset")],
)
async def test_lost_connection(victim: str, loss: str) -> None:
    """The peer's transport ends without a close frame: every call raises the same error."""
    lose, cause_type = LOSSES[loss]
    client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, server), anyio.create_task_group() as tg:
        connection, peer_stream = (
            (client, server_stream) if victim == "client" else (server, client_stream)
        )
        receiving = spawn(tg, connection.recv)
        await settle()
        await lose(peer_stream)
        await receiving.wait()
        errors = [receiving.exc]
        with pytest.raises(ConnectionClosedError) as sending:
            await connection.send("lost")
        errors.append(sending.value)
        with pytest.raises(ConnectionClosedError) as iterating:
            async for _ in connection:
                pass  # pragma: no cover
        errors.append(iterating.value)
        with pytest.raises(ConnectionClosedError) as pinging:
            await connection.ping()
        errors.append(pinging.value)
        for error in errors:
            assert type(error) is ConnectionClosedError
            assert str(error) == "no close frame received or sent"
            assert type(error.__cause__) is cause_type
        assert connection.state is State.CLOSED
        assert connection.close_code == 1006
        assert connection.close_reason == ""


async def test_lost_connection_keeps_messages_received_before() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, server):
        await server.send("one")
        await server.send("two")
        await settle()  # the server's writer wrote them
        await server_stream.aclose()
        await client.wait_closed()
        assert await client.recv() == "one"
        assert await client.recv() == "two"
        with pytest.raises(ConnectionClosedError, match=r"^no close frame received or sent$"):
            await client.recv()


# 3. Keepalive --------------------------------------------------------------------


@pytest.mark.autojump
async def test_keepalive_timeout(mock_clock: Any) -> None:
    """An unresponsive peer is detected at ping_interval + ping_timeout, not later."""
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {"ping_interval": 5, "ping_timeout": 3, "close_timeout": 100}
    async with (
        pair(streams, client=options, server={"ping_interval": None}, bound=1000) as (
            client,
            server,
        ),
        anyio.create_task_group() as tg,
    ):
        start = mock_clock.current_time()
        server_stream.swallow = True  # a black hole: no pong, no close frame, no EOF
        waiting = spawn(tg, client.wait_closed)
        with pytest.raises(ConnectionClosedError) as exc_info:
            await client.recv()
        elapsed = mock_clock.current_time() - start
        assert 8 <= elapsed <= 8 + 0.01
        assert str(exc_info.value) == (
            "sent 1011 (internal error) keepalive ping timeout; no close frame received"
        )
        await waiting.wait()
        assert mock_clock.current_time() - start == elapsed
        assert client.state is State.CLOSED
        assert client.close_code == 1006
        with pytest.raises(ConnectionClosedError) as sending:
            await client.send("too late")
        assert str(sending.value) == str(exc_info.value)
        # The close frame went out before the transport was aborted.
        with pytest.raises(ConnectionClosedError) as server_side:
            await server.recv()
        assert server_side.value.rcvd is not None
        assert server_side.value.rcvd.code == 1011
        assert server_side.value.rcvd.reason == "keepalive ping timeout"


async def test_keepalive_timeout_real_time() -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    interval = timeout = REAL_TIMEOUT
    options = {"ping_interval": interval, "ping_timeout": timeout, "close_timeout": 60}
    start = anyio.current_time()  # before the keepalive task starts
    async with pair(streams, client=options, server={"ping_interval": None}) as (client, _server):
        server_stream.swallow = True
        with pytest.raises(ConnectionClosedError) as exc_info:
            await client.recv()  # within HANG, far below close_timeout
        assert anyio.current_time() - start >= (interval + timeout) * 0.9
        assert str(exc_info.value) == (
            "sent 1011 (internal error) keepalive ping timeout; no close frame received"
        )
        assert client.state is State.CLOSED


@pytest.mark.autojump
async def test_keepalive_pings_are_answered_automatically(
    mock_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The client never calls recv(); its reader answers the server's keepalive pings."""
    caplog.set_level(logging.DEBUG, logger="anyws.server")
    options = {"ping_interval": 1, "ping_timeout": 1}
    async with pair(client={"ping_interval": None}, server=options, bound=1000) as (
        client,
        server,
    ):
        await anyio.sleep(100)
        assert server.state is State.OPEN
        assert messages(caplog, "anyws.server").count("% received keepalive pong") >= 99
        await server.send("still open")
        assert await client.recv() == "still open"


async def test_keepalive_pings_are_answered_automatically_real_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws.server")
    pongs = LogCounter("% received keepalive pong", 3)
    logging.getLogger("anyws.server").addHandler(pongs)
    options = {"ping_interval": REAL_TIMEOUT / 4, "ping_timeout": HANG / 2}
    try:
        async with pair(client={"ping_interval": None}, server=options) as (client, server):
            await pongs.reached.wait()  # bounded by HANG
            assert server.state is State.OPEN
            await server.send("still open")
            assert await client.recv() == "still open"
    finally:
        logging.getLogger("anyws.server").removeHandler(pongs)


@pytest.mark.autojump
@pytest.mark.parametrize(("ping_interval", "pings"), [(None, 0), (1, 100)])
async def test_ping_interval(
    mock_clock: Any, caplog: pytest.LogCaptureFixture, ping_interval: float | None, pings: int
) -> None:
    """ping_interval=None sends no ping at all; otherwise one per interval."""
    caplog.set_level(logging.DEBUG, logger="anyws.server")
    async with pair(
        client={"ping_interval": ping_interval}, server={"ping_interval": None}, bound=10_000
    ) as (client, _server):
        await anyio.sleep(100.5)
        received = [line for line in messages(caplog, "anyws.server") if line.startswith("< PING")]
        assert len(received) == pings
        assert client.state is State.OPEN


@pytest.mark.autojump
async def test_ping_timeout_none_never_fails(
    mock_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws.client")
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {"ping_interval": 1, "ping_timeout": None}
    async with pair(streams, client=options, server={"ping_interval": None}, bound=10_000) as (
        client,
        server,
    ):
        server_stream.swallow = True
        await anyio.sleep(200.5)
        assert messages(caplog, "anyws.client").count("% sent keepalive ping") == 200
        assert client.state is State.OPEN
        server_stream.swallow = False
        await server.send("hello")
        assert await client.recv() == "hello"


# 4. Caller timeouts --------------------------------------------------------------
#
# Each case takes the timeout to use, and runs in real time on every backend and in
# virtual time on trio.


async def _assert_usable(client: Any, server: Any) -> None:
    await server.send("to client")
    assert await client.recv() == "to client"
    await client.send("to server")
    assert await server.recv() == "to server"
    assert client.state is server.state is State.OPEN


async def timeout_recv(seconds: float) -> None:
    async with pair() as (client, server):
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.recv()
        await server.send("after the timeout")
        assert await client.recv() == "after the timeout"
        await _assert_usable(client, server)


async def timeout_recv_with_a_partial_message(seconds: float) -> None:
    """Fragments that arrived before the timeout are kept for the next recv()."""
    more = anyio.Event()
    async with pair() as (client, server), anyio.create_task_group() as tg:
        tg.start_soon(server.send, agen(["a", "b", "c"], {2: more}))
        await settle()  # "a" is in, "b" is pending
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.recv()
        more.set()
        assert await client.recv() == "abc"
        await _assert_usable(client, server)


async def timeout_recv_streaming(seconds: float) -> None:
    async with pair() as (client, server):
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await collect(client)
        await server.send(["after", " the ", "timeout"])
        assert await collect(client) == ["after", " the ", "timeout"]
        await _assert_usable(client, server)


async def timeout_recv_streaming_mid_message(seconds: float) -> None:
    """The fragments not yet yielded go to the next recv_streaming() or recv()."""
    more = anyio.Event()
    async with pair() as (client, server), anyio.create_task_group() as tg:
        tg.start_soon(server.send, agen(["a", "b", "c"], {2: more}))
        await settle()  # "a" and "b" are in, "c" is pending
        got: list[str] = []
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):  # noqa: PT012
            async for fragment in client.recv_streaming():
                got.append(fragment)  # noqa: PERF401
        assert got == ["a", "b"]
        more.set()
        assert await client.recv() == "c"
        await _assert_usable(client, server)


async def timeout_ping(seconds: float) -> None:
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, server):
        server_stream.swallow = True
        waiter = await client.ping(b"lost")
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await waiter
        server_stream.swallow = False
        latency = await (await client.ping(b"answered"))
        # The cancelled ping stayed registered: the later pong answers it too.
        assert await waiter >= seconds * 0.9
        assert client.latency == latency
        await _assert_usable(client, server)


async def timeout_wait_closed(seconds: float) -> None:
    async with pair() as (client, server):
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.wait_closed()
        await _assert_usable(client, server)


async def timeout_send_waiting_for_the_writer(seconds: float) -> None:
    """A send() cancelled while the writer is stuck leaves the stream intact."""
    client_stream, _server_stream = streams = lockstep_stream_pair()
    async with pair(streams, client={"write_limit": 10}) as (client, server):
        client_stream.paused = True  # the server stops reading
        big = "x" * 1000
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.send(big)
        client_stream.paused = False
        await client.send("after")
        # The frame was queued whole before send() waited: it still goes out, intact.
        assert await server.recv() == big
        assert await server.recv() == "after"
        await _assert_usable(client, server)


async def timeout_fragmented_send(seconds: float) -> None:
    """Cancelling a fragmented message part-way fails the connection with 1011."""
    async with pair() as (client, server):
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.send(agen(["a", "b", "never"], {2: anyio.Event()}))
        with pytest.raises(ConnectionClosedError) as exc_info:
            await server.recv()
        assert exc_info.value.rcvd is not None
        assert exc_info.value.rcvd.code == 1011
        assert exc_info.value.rcvd.reason == "error in fragmented message"
        with pytest.raises(ConnectionClosedError) as client_side:
            await client.send("after")
        assert str(client_side.value) == (
            "sent 1011 (internal error) error in fragmented message; no close frame received"
        )


async def timeout_fragmented_send_before_the_first_fragment(seconds: float) -> None:
    """Before its first fragment exists, a fragmented send cancels cleanly."""
    async with pair() as (client, server):
        with pytest.raises(TimeoutError), anyio.fail_after(seconds):
            await client.send(agen(["never"], {0: anyio.Event()}))
        await _assert_usable(client, server)


TIMEOUT_CASES = {
    name.removeprefix("timeout_"): case
    for name, case in globals().items()
    if name.startswith("timeout_") and callable(case)
}


@pytest.mark.parametrize("case", TIMEOUT_CASES)
async def test_caller_timeout(case: str) -> None:
    await TIMEOUT_CASES[case](REAL_TIMEOUT)


@pytest.mark.autojump
@pytest.mark.parametrize("case", TIMEOUT_CASES)
async def test_caller_timeout_virtual_time(mock_clock: Any, case: str) -> None:
    start = mock_clock.current_time()
    await TIMEOUT_CASES[case](5)
    assert mock_clock.current_time() - start == 5


# 5. Closing handshake ------------------------------------------------------------


async def test_close() -> None:
    async with pair() as (client, server):
        await client.close()
        assert client.state is server.state is State.CLOSED
        assert client.close_code == server.close_code == 1000
        assert client.close_reason == server.close_reason == ""
        with pytest.raises(ConnectionClosedOK) as client_side:
            await client.recv()
        assert str(client_side.value) == "sent 1000 (OK); then received 1000 (OK)"
        assert client_side.value.__cause__ is None
        with pytest.raises(ConnectionClosedOK) as server_side:
            await server.recv()
        assert str(server_side.value) == "received 1000 (OK); then sent 1000 (OK)"
        with pytest.raises(ConnectionClosedOK) as sending:
            await client.send("after")
        assert str(sending.value) == "sent 1000 (OK); then received 1000 (OK)"
        with pytest.raises(ConnectionClosedOK):
            await server.ping()
        with pytest.raises(ConnectionClosedOK):
            await server.pong()
        assert [message async for message in client] == []


@pytest.mark.parametrize(
    ("code", "reason", "exc_type", "explained"),
    [
        (1001, "going away é", ConnectionClosedOK, "1001 (going away) going away é"),
        (4000, "custom", ConnectionClosedError, "4000 (private use) custom"),
        (3000, "", ConnectionClosedError, "3000 (registered)"),
    ],
)
async def test_close_with_code_and_reason(
    code: int, reason: str, exc_type: type[ConnectionClosed], explained: str
) -> None:
    async with pair() as (client, server):
        await server.close(code, reason)
        assert client.close_code == server.close_code == code
        assert client.close_reason == server.close_reason == reason
        with pytest.raises(exc_type) as client_side:
            await client.recv()
        assert type(client_side.value) is exc_type
        assert str(client_side.value) == f"received {explained}; then sent {explained}"
        with pytest.raises(exc_type) as server_side:
            await server.recv()
        assert str(server_side.value) == f"sent {explained}; then received {explained}"


async def test_close_with_an_invalid_code_or_reason() -> None:
    async with pair() as (client, server):
        for code, reason, message in [
            (1005, "", "invalid status code: 1005"),
            (999, "", "invalid status code: 999"),
            (1000, "x" * 124, "close reason too long"),
        ]:
            with pytest.raises(ProtocolError) as exc_info:
                await client.close(code, reason)
            assert str(exc_info.value) == message
            await _assert_usable(client, server)


async def test_close_is_idempotent() -> None:
    """Only the first close() sends a close frame; every call waits for the end."""
    _client_stream, server_stream = streams = memory_stream_pair()
    async with pair(streams) as (client, server), anyio.create_task_group() as tg:
        server_stream.paused = True  # hold the server's echo back
        closing = [spawn(tg, client.close, 4001, "first")]
        await settle()
        closing.append(spawn(tg, client.close, 4002, "second"))
        closing.append(spawn(tg, client.aclose))
        await settle()
        assert not any(job.done for job in closing)
        server_stream.paused = False
        for job in closing:
            await job.wait()
            assert job.exc is None
        await client.close(4003)
        await client.aclose()
        await server.close()
        assert server.close_code == client.close_code == 4001
        assert server.close_reason == client.close_reason == "first"


async def test_close_during_a_fragmented_send_fails_with_1011() -> None:
    """A message can't be left unfinished by a normal close: the connection fails instead."""
    more = anyio.Event()
    async with pair() as (client, server), anyio.create_task_group() as tg:
        sending = spawn(tg, client.send, agen(["a", "b", "c"], {2: more}))
        await settle()  # "a" went out, "b" waits for "c"
        await client.close()
        more.set()
        await sending.wait()
        assert type(sending.exc) is ConnectionClosedError
        assert str(sending.exc) == (
            "sent 1011 (internal error) close during fragmented message; no close frame received"
        )
        with pytest.raises(ConnectionClosedError) as exc_info:
            await server.recv()
        assert exc_info.value.rcvd is not None
        assert exc_info.value.rcvd.code == 1011
        assert exc_info.value.rcvd.reason == "close during fragmented message"


async def test_aclose() -> None:
    async with pair() as (client, server):
        await client.aclose()
        assert client.state is server.state is State.CLOSED
        assert server.close_code == 1000


async def test_wait_closed() -> None:
    async with pair() as (client, server), anyio.create_task_group() as tg:
        waiting = [spawn(tg, connection.wait_closed) for connection in (client, server)]
        await settle()
        assert not any(job.done for job in waiting)
        await client.close()
        for job in waiting:
            await job.wait()
            assert job.exc is None
        assert server.state is State.CLOSED


async def test_messages_received_before_the_close_frame_are_returned() -> None:
    async with pair() as (client, server):
        await server.send("one")
        await server.send(["tw", "o"])
        await server.send(b"three")
        await server.close()
        assert client.state is State.CLOSED
        assert await client.recv() == "one"
        assert await collect(client) == ["tw", "o"]
        assert await client.recv() == b"three"
        with pytest.raises(ConnectionClosedOK) as exc_info:
            await client.recv()
        assert str(exc_info.value) == "received 1000 (OK); then sent 1000 (OK)"


async def test_close_wakes_a_blocked_recv() -> None:
    async with pair() as (client, server), anyio.create_task_group() as tg:
        receiving = [spawn(tg, client.recv), spawn(tg, collect, server)]
        await settle()
        await server.close()
        for job in receiving:
            await job.wait()
        assert type(receiving[0].exc) is ConnectionClosedOK
        assert type(receiving[1].exc) is ConnectionClosedOK


# 6. Backpressure -----------------------------------------------------------------


async def test_max_queue_stops_reading() -> None:
    """With max_queue messages waiting for recv(), the reader stops: the peer's send waits."""
    streams = lockstep_stream_pair()
    # write_limit=0: the server's send() returns once the client has read the bytes.
    async with (
        pair(streams, client={"max_queue": 3}, server={"write_limit": 0}) as (
            client,
            server,
        ),
        anyio.create_task_group() as tg,
    ):
        for index in range(3):
            await server.send(f"message {index}")  # read at once, and queued
        blocked = spawn(tg, server.send, "message 3")
        await settle()
        later = spawn(tg, server.send, "message 4")
        await settle()
        assert not blocked.done
        assert not later.done
        assert await client.recv() == "message 0"
        await blocked.wait()  # the client read one more
        await settle()
        assert not later.done
        assert await client.recv() == "message 1"
        await later.wait()
        assert [await client.recv() for _ in range(3)] == [f"message {i}" for i in (2, 3, 4)]


async def test_max_queue_none_reads_everything() -> None:
    streams = lockstep_stream_pair()
    async with pair(streams, client={"max_queue": None}, server={"write_limit": 0}) as (
        client,
        server,
    ):
        for index in range(50):
            await server.send(f"message {index}")
        assert [await client.recv() for _ in range(50)] == [f"message {i}" for i in range(50)]


async def test_send_waits_while_over_write_limit() -> None:
    client_stream, _server_stream = streams = lockstep_stream_pair()
    async with (
        pair(streams, client={"write_limit": 1000}) as (
            client,
            server,
        ),
        anyio.create_task_group() as tg,
    ):
        client_stream.paused = True  # the server stops reading
        await client.send(b"a" * 600)  # 600 bytes buffered: under the limit
        blocked = spawn(tg, client.send, b"b" * 600)
        await settle()
        assert not blocked.done
        client_stream.paused = False
        await blocked.wait()
        assert blocked.exc is None
        assert await server.recv() == b"a" * 600
        assert await server.recv() == b"b" * 600


async def test_fragmented_send_waits_between_fragments_over_write_limit() -> None:
    client_stream, _server_stream = streams = lockstep_stream_pair()
    produced: list[int] = []

    async def fragments() -> AsyncIterator[bytes]:
        for index in range(4):
            produced.append(index)
            yield bytes(600)

    async with (
        pair(streams, client={"write_limit": 1000}) as (
            client,
            server,
        ),
        anyio.create_task_group() as tg,
    ):
        client_stream.paused = True
        sending = spawn(tg, client.send, fragments())
        await settle()
        # One frame in flight, one queued over the limit: the iterator waits.
        assert produced == [0, 1]
        assert not sending.done
        client_stream.paused = False
        await sending.wait()
        assert sending.exc is None
        assert await server.recv() == bytes(2400)


@pytest.mark.parametrize("sender_side", ["client", "server"])
async def test_max_size(sender_side: str) -> None:
    """The receiver of a message over max_size fails the connection with 1009."""
    options = {"max_size": 100}
    async with pair(client=options, server=options) as (client, server):
        sender, receiver = (client, server) if sender_side == "client" else (server, client)
        await sender.send(b"x" * 100)  # at the limit: fine
        assert await receiver.recv() == b"x" * 100
        await sender.send(["x" * 60, "y" * 41])  # fragmented, one byte too many
        with pytest.raises(ConnectionClosedError) as sender_side_exc:
            await sender.recv()
        rcvd = sender_side_exc.value.rcvd
        assert rcvd is not None
        assert rcvd.code == 1009
        assert rcvd.reason == "message of 101 bytes exceeds limit of 100 bytes"
        with pytest.raises(ConnectionClosedError) as receiver_side_exc:
            await receiver.recv()
        assert receiver_side_exc.value.sent is not None
        assert receiver_side_exc.value.sent.code == 1009
        assert isinstance(receiver_side_exc.value.__cause__, PayloadTooBig)
        assert sender.close_code == 1009


async def test_max_size_single_frame() -> None:
    async with pair(server={"max_size": 10}) as (client, _server):
        await client.send("x" * 11)
        with pytest.raises(ConnectionClosedError) as exc_info:
            await client.recv()
        assert str(exc_info.value) == (
            "received 1009 (message too big) message of 11 bytes exceeds limit of 10 bytes; "
            "then sent 1009 (message too big) message of 11 bytes exceeds limit of 10 bytes"
        )


# 7. Exceptions stay plain --------------------------------------------------------


@pytest.mark.parametrize("peer", ["healthy", "reset", "unresponsive"])
async def test_error_in_body_propagates_unwrapped(peer: str) -> None:
    """No ExceptionGroup: the body's exception comes out as it is; the peer sees 1011."""
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {"close_timeout": REAL_TIMEOUT if peer == "unresponsive" else HANG / 2}
    connections: list[Any] = []
    error = ValueError("boom")
    with pytest.raises(ValueError) as exc_info, anyio.fail_after(HANG):  # noqa: PT012
        async with connection_pair(
            streams=streams, client_options=options, server_options=options
        ) as (client, server):
            connections += [client, server]
            if peer == "reset":
                server_stream.reset()
            elif peer == "unresponsive":
                server_stream.swallow = True
                server_stream.delay_eof = True
            raise error
    assert exc_info.value is error
    assert exc_info.value.__context__ is None
    client, server = connections
    assert client.state is server.state is State.CLOSED
    if peer == "healthy":
        assert server.close_code == 1011
        assert client.close_code == 1011
        with pytest.raises(ConnectionClosedError) as server_side:
            await server.recv()
        assert str(server_side.value) == (
            "received 1011 (internal error); then sent 1011 (internal error)"
        )
    elif peer == "unresponsive":
        assert server.close_code == 1011  # it got the close frame, its answer was lost
        assert client.close_code == 1006


async def test_connection_closed_in_body_propagates_unwrapped() -> None:
    with pytest.raises(ConnectionClosedOK) as exc_info, anyio.fail_after(HANG):  # noqa: PT012
        async with connection_pair() as (client, server):
            await server.close()
            await client.recv()
    assert type(exc_info.value) is ConnectionClosedOK


async def test_error_in_handler_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(connection: Any) -> None:
        assert await connection.recv() == "hello"
        raise ValueError("handler bug")

    with anyio.fail_after(HANG):
        async with connection_pair(handler=handler) as (client, _server):
            await client.send("hello")
            with pytest.raises(ConnectionClosedError) as exc_info:
                await client.recv()
            assert str(exc_info.value) == (
                "received 1011 (internal error); then sent 1011 (internal error)"
            )
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "connection handler failed"
    assert record.exc_info is not None
    assert type(record.exc_info[1]) is ValueError


# 8. Every wait is bounded ----------------------------------------------------------


@pytest.mark.autojump
@pytest.mark.parametrize(
    "make_streams",
    [memory_stream_pair, lockstep_stream_pair],  # lockstep: the writer is stuck too
)
@pytest.mark.parametrize("side", ["client", "server"])
async def test_close_is_bounded_by_close_timeout(
    mock_clock: Any, side: str, make_streams: Callable[[], Streams]
) -> None:
    """The peer stops reading: close() gives up after close_timeout and aborts the transport."""
    client_stream, server_stream = streams = make_streams()
    options = {"close_timeout": 10, "ping_interval": None}
    async with pair(streams, client=options, server=options, bound=1000) as (client, server):
        connection, stream = (
            (client, client_stream) if side == "client" else (server, server_stream)
        )
        stream.paused = True  # what it sends, including its close frame, stays unread
        start = mock_clock.current_time()
        await connection.close()
        assert mock_clock.current_time() - start <= 10 + 0.01
        assert connection.state is State.CLOSED
        assert connection.close_code == 1006
        with pytest.raises(ConnectionClosedError) as exc_info:
            await connection.recv()
        assert str(exc_info.value) == "sent 1000 (OK); no close frame received"
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()  # aborted


async def test_close_is_bounded_by_close_timeout_real_time() -> None:
    client_stream, _server_stream = streams = memory_stream_pair()
    options = {"close_timeout": REAL_TIMEOUT}
    async with pair(streams, client=options, server=options) as (client, _server):
        client_stream.paused = True
        await client.close()
        assert client.state is State.CLOSED
        assert client.close_code == 1006


@pytest.mark.autojump
async def test_close_without_tcp_close_is_bounded(mock_clock: Any) -> None:
    """The server answers the close frame but never closes TCP: the client gives up."""
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {"close_timeout": 10, "ping_interval": None}
    async with pair(streams, client=options, server=options, bound=1000) as (client, _server):
        server_stream.delay_eof = True
        start = mock_clock.current_time()
        await client.close()
        assert mock_clock.current_time() - start <= 10 + 0.01
        assert client.state is State.CLOSED
        assert client.close_code == 1000  # the handshake itself completed
        server_stream.delay_eof = False


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_send_blocked_on_a_full_buffer_is_woken_by_closing(how: str) -> None:
    client_stream, server_stream = streams = lockstep_stream_pair()
    options = {"write_limit": 10, "close_timeout": REAL_TIMEOUT}
    async with pair(streams, client=options) as (client, _server), anyio.create_task_group() as tg:
        client_stream.paused = True  # the server stops reading
        sending = spawn(tg, client.send, "x" * 100)
        await settle()
        assert not sending.done
        if how == "reset":
            server_stream.reset()
        else:
            await client.close()  # gives up after close_timeout
        await sending.wait()
        assert client.state is State.CLOSED
        # Not a silent return: the message never went out.
        assert type(sending.exc) is ConnectionClosedError
        if how == "reset":
            assert str(sending.exc) == "no close frame received or sent"
            assert isinstance(sending.exc.__cause__, ConnectionResetError)
        else:
            assert str(sending.exc) == "sent 1000 (OK); no close frame received"


async def test_fragmented_send_blocked_on_a_full_buffer_is_woken_by_closing() -> None:
    client_stream, server_stream = streams = lockstep_stream_pair()
    options = {"write_limit": 10}
    async with pair(streams, client=options) as (client, _server), anyio.create_task_group() as tg:
        client_stream.paused = True
        sending = spawn(tg, client.send, ["x" * 100, "y" * 100, "z"])
        await settle()
        assert not sending.done
        server_stream.reset()
        await sending.wait()
        assert type(sending.exc) is ConnectionClosedError
        assert str(sending.exc) == "no close frame received or sent"
        assert isinstance(sending.exc.__cause__, ConnectionResetError)


# 9. Debug logs -------------------------------------------------------------------


async def test_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws.client")
    caplog.set_level(logging.DEBUG, logger="anyws.server")
    async with pair() as (client, server):
        caplog.clear()
        await client.send("hello")
        assert await server.recv() == "hello"
        await server.send(b"\x01\x02")
        assert await client.recv() == b"\x01\x02"
        await client.close()
    assert messages(caplog, "anyws.client") == [
        "> TEXT 'hello' [5 bytes]",
        "< BINARY 01 02 [2 bytes]",
        "> CLOSE 1000 (OK) [2 bytes]",
        "= connection is CLOSING",
        "< CLOSE 1000 (OK) [2 bytes]",
        "> EOF",
        "= connection is CLOSED",
        "= connection closed: sent 1000 (OK); then received 1000 (OK)",
    ]
    assert messages(caplog, "anyws.server") == [
        "< TEXT 'hello' [5 bytes]",
        "> BINARY 01 02 [2 bytes]",
        "< CLOSE 1000 (OK) [2 bytes]",
        "> CLOSE 1000 (OK) [2 bytes]",
        "= connection is CLOSING",
        "> EOF",
        "= connection is CLOSED",
        "= connection closed: received 1000 (OK); then sent 1000 (OK)",
    ]


async def test_no_debug_logs_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="anyws")
    async with pair() as (client, server):
        await client.send("hello")
        assert await server.recv() == "hello"
    assert [r for r in caplog.records if r.name.startswith("anyws")] == []


# 10. No task left behind -----------------------------------------------------------


@pytest.mark.parametrize(
    "ending", ["normal", "error", "reset", "keepalive timeout", "cancelled", "handler"]
)
async def test_no_task_left_behind(ending: str) -> None:
    """However a pair ends, the reader, writer and keepalive tasks of both sides are gone."""
    before = anyws_tasks()
    _client_stream, server_stream = streams = memory_stream_pair()
    options = {
        "ping_interval": REAL_TIMEOUT,
        "ping_timeout": REAL_TIMEOUT if ending == "keepalive timeout" else HANG / 2,
        "close_timeout": 1,
    }

    async def handler(connection: Any) -> None:
        await connection.send(await connection.recv())

    with anyio.fail_after(HANG), anyio.CancelScope() as scope, contextlib.suppress(ValueError):
        async with connection_pair(
            streams=streams,
            client_options=options,
            server_options=options,
            handler=handler if ending == "handler" else None,
        ) as (client, server):
            await settle()  # a handler starts its tasks in its own task
            tasks = ["reader", "keepalive"]
            if ending != "handler":
                # The writer starts with the first bytes to write.
                await client.send("start the writer")
                await server.send("start the writer")
                await settle()
                tasks.append("writer")
            running = anyws_tasks()
            for side, connection in (("client", client), ("server", server)):
                for task in tasks:
                    assert f"anyws {side} {connection.id} {task}" in running
            if ending == "error":
                raise ValueError("boom")
            elif ending == "reset":
                server_stream.reset()
                await client.wait_closed()
            elif ending == "keepalive timeout":
                server_stream.swallow = True
                await client.wait_closed()
            elif ending == "cancelled":
                scope.cancel()
                await anyio.sleep_forever()
            elif ending == "handler":
                await client.send("echo")
                assert await client.recv() == "echo"
                with pytest.raises(ConnectionClosedOK):
                    await client.recv()
    assert scope.cancelled_caught == (ending == "cancelled")
    assert client.state is server.state is State.CLOSED
    assert anyws_tasks() == before


async def test_recv_after_abandoning_recv_streaming() -> None:
    """A caller that stops iterating leaves the rest of the message for recv()."""
    async with pair() as (client, server):
        await client.send(["a", "b", "c"])
        fragments = server.recv_streaming()
        assert await anext(fragments) == "a"
        # The generator is suspended, not closed: recv() is not blocked by it.
        assert await server.recv() == "bc"
        await fragments.aclose()
        await client.send("next")
        assert await server.recv() == "next"


async def test_leaving_loops_early_leaves_nothing_behind() -> None:
    """``break`` out of ``async for`` or `recv_streaming`: no message is lost, and
    nothing is left to finalize (trio warns about unfinished async generators)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with pair() as (client, server):
            for message in ["one", "two", ["three", "four"], "five"]:
                await client.send(message)
            async for message in server:
                assert message == "one"
                break
            async for fragment in server.recv_streaming():
                assert fragment == "two"
                break
            async for fragment in server.recv_streaming():
                assert fragment == "three"
                break
            assert await server.recv() == "four"
            assert await server.recv() == "five"
            gc.collect()
            await anyio.wait_all_tasks_blocked()
    assert [str(w.message) for w in caught] == []


class RecordingStream(anyio.abc.ByteStream):
    """Passes everything through to ``stream`` and keeps what was sent."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.sent = bytearray()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        self.sent += item
        await self.stream.send(item)

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_compression_by_default_and_per_message_switch() -> None:
    """Both sides negotiate permessage-deflate; send(compress=False) skips it once."""
    client_stream, server_stream = memory_stream_pair()
    recording = RecordingStream(server_stream)
    async with connection_pair(streams=(client_stream, recording)) as (client, server):
        extensions = server.response.headers["Sec-WebSocket-Extensions"]
        assert extensions.startswith("permessage-deflate")
        message = "hello " * 1000
        start = len(recording.sent)
        await server.send(message)
        assert await client.recv() == message
        compressed = bytes(recording.sent[start:])
        assert compressed[0] == 0xC1  # FIN, RSV1, TEXT
        assert len(compressed) < 100
        start = len(recording.sent)
        await server.send(message, compress=False)
        assert await client.recv() == message
        plain = bytes(recording.sent[start:])
        assert plain[0] == 0x81  # FIN, TEXT: RSV1 clear
        assert plain.endswith(message.encode())
        # The switch was one-shot, and the compression context stayed in step.
        start = len(recording.sent)
        await server.send([message, message])
        assert await client.recv() == message * 2
        assert recording.sent[start] == 0x41  # RSV1, TEXT, not FIN
        assert len(recording.sent) - start < 100


async def test_compression_off() -> None:
    async with connection_pair(
        client_options={"compression": None}, server_options={"compression": None}
    ) as (client, server):
        assert "Sec-WebSocket-Extensions" not in server.request.headers
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        await client.send("hi", compress=False)
        assert await server.recv() == "hi"


async def test_unknown_compression_raises() -> None:
    with pytest.raises(ValueError, match="unsupported compression: brotli"):
        connection_pair(client_options={"compression": "brotli"})
    with pytest.raises(ValueError, match="unsupported compression: brotli"):
        connection_pair(server_options={"compression": "brotli"})


@pytest.fixture
async def echo_client() -> AsyncIterator[Any]:
    """A task-group-owning context manager in a fixture: anyio's plugin runs the
    setup and the teardown of an async generator fixture in the same task, which
    is what such a context manager needs."""

    async def echo(websocket: Any) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with connection_pair(handler=echo) as (client, _server):
        yield client


async def test_connection_from_a_fixture(echo_client: Any) -> None:
    await echo_client.send("from a fixture")
    assert await echo_client.recv() == "from a fixture"
