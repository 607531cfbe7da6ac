"""anyws.testing's in-memory byte streams: memory_stream_pair and lockstep_stream_pair.

Every async test runs on each backend of tests/conftest.py. Tasks are synchronised with
`anyio.wait_all_tasks_blocked`, never with sleeps: an operation started with `start`
records its outcome, so a test can assert that it is still pending.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import AnyByteStream, ByteStream, SocketAttribute, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

import anyws.testing
from anyws.testing import MemoryByteStream, lockstep_stream_pair, memory_stream_pair


if TYPE_CHECKING:
    import trustme

Pair = tuple[MemoryByteStream, MemoryByteStream]
PairMaker = Callable[[], Pair]


@dataclass
class Call:
    """The outcome, so far, of an operation running in a background task."""

    done: bool = False
    value: object = None
    error: Exception | None = None
    cancelled: bool = False


def start(tg: TaskGroup, func: Callable[[], Awaitable[object]]) -> Call:
    """Run ``func`` in ``tg``; its result, exception or cancellation lands in the Call."""
    call = Call()

    async def run() -> None:
        try:
            call.value = await func()
        except anyio.get_cancelled_exc_class():
            call.cancelled = True
            raise
        except Exception as exc:
            call.error = exc
        finally:
            call.done = True

    tg.start_soon(run)
    return call


def start_send(tg: TaskGroup, stream: MemoryByteStream, data: bytes) -> Call:
    """Send in the background: on a lockstep pair, send() waits for the peer to receive."""
    return start(tg, lambda: stream.send(data))


async def receive_all(stream: MemoryByteStream) -> bytes:
    """Receive until EndOfStream."""
    chunks = []
    try:
        while True:
            chunks.append(await stream.receive())
    except anyio.EndOfStream:
        return b"".join(chunks)


async def assert_checkpoint(func: Callable[[], Awaitable[object]]) -> None:
    """``func()`` raises the cancellation of an already cancelled scope."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await func()
    assert scope.cancelled_caught


def assert_reset(error: BaseException | None) -> None:
    assert isinstance(error, anyio.BrokenResourceError)
    assert isinstance(error.__cause__, ConnectionResetError)


@pytest.fixture(params=[memory_stream_pair, lockstep_stream_pair], ids=["memory", "lockstep"])
def make_pair(request: pytest.FixtureRequest) -> PairMaker:
    maker: PairMaker = request.param
    return maker


@pytest.fixture
def is_lockstep(make_pair: PairMaker) -> bool:
    return make_pair is lockstep_stream_pair


@pytest.fixture
def pair(make_pair: PairMaker) -> Pair:
    # Built in a synchronous fixture, outside of any event loop: that must work.
    return make_pair()


def test_exports() -> None:
    assert set(anyws.testing.__all__) >= {
        "MemoryByteStream",
        "lockstep_stream_pair",
        "memory_stream_pair",
    }
    assert anyws.testing.MemoryByteStream is MemoryByteStream


class TestBothPairs:
    """The ByteStream contract, the same on both pairs."""

    async def test_pair_is_a_connected_byte_stream(self, pair: Pair) -> None:
        left, right = pair
        assert isinstance(left, ByteStream)
        assert isinstance(right, ByteStream)
        transport: AnyByteStream = left  # statically too
        assert transport is left
        assert left.extra_attributes == {}
        assert left.extra(SocketAttribute.remote_address, None) is None
        with pytest.raises(anyio.TypedAttributeLookupError):
            left.extra(SocketAttribute.remote_address)

    async def test_bytes_flow_both_ways(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"ping")
            assert await right.receive() == b"ping"
            start_send(tg, right, b"pong")
            assert await left.receive() == b"pong"

    async def test_accepts_any_bytes_like_and_copies_it(self, pair: Pair) -> None:
        left, right = pair
        data = bytearray(b"abc")
        async with anyio.create_task_group() as tg:
            start_send(tg, left, data)  # type: ignore[arg-type]
            await anyio.wait_all_tasks_blocked()
            data[:] = b"xyz"
            assert await right.receive() == b"abc"
            await anyio.wait_all_tasks_blocked()  # the first send returns
            start_send(tg, left, memoryview(b"def"))  # type: ignore[arg-type]
            assert await right.receive() == b"def"

    async def test_receive_waits_for_data(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            assert not call.done
            await left.send(b"x")  # on a lockstep pair, the pending receive takes it
            await anyio.wait_all_tasks_blocked()
        assert call.value == b"x"

    async def test_receive_returns_at_most_max_bytes(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            sent = start_send(tg, left, b"abcdef")
            assert await right.receive(4) == b"abcd"
            await anyio.wait_all_tasks_blocked()
            assert await right.receive() == b"ef"
        assert sent.done
        assert sent.error is None

    @pytest.mark.parametrize("max_bytes", [0, -1])
    async def test_receive_rejects_max_bytes_below_one(self, pair: Pair, max_bytes: int) -> None:
        _, right = pair
        with pytest.raises(ValueError, match="positive"):
            await right.receive(max_bytes)

    async def test_empty_send_does_nothing(self, pair: Pair) -> None:
        left, right = pair
        await left.send(b"")  # returns at once, even on a lockstep pair
        await left.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_send_eof_ends_the_stream_after_the_data(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:

            async def send_then_eof() -> None:
                await left.send(b"data")
                await left.send_eof()

            tg.start_soon(send_then_eof)
            assert await receive_all(right) == b"data"
        with pytest.raises(anyio.EndOfStream):  # and again
            await right.receive()

    async def test_send_eof_is_a_half_close(self, pair: Pair) -> None:
        left, right = pair
        await left.send_eof()
        async with anyio.create_task_group() as tg:
            start_send(tg, right, b"still open")
            assert await left.receive() == b"still open"

    async def test_send_eof_is_idempotent_and_ends_sending(self, pair: Pair) -> None:
        left, right = pair
        await left.send_eof()
        await left.send_eof()
        with pytest.raises(anyio.ClosedResourceError):
            await left.send(b"x")
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_send_eof_succeeds_after_the_peer_closed(self, pair: Pair) -> None:
        left, right = pair
        await right.aclose()
        await left.send_eof()

    async def test_send_eof_wakes_a_pending_receive(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            await left.send_eof()
        assert isinstance(call.error, anyio.EndOfStream)

    async def test_aclose_wakes_a_pending_receive_of_the_peer(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            await left.aclose()
        assert isinstance(call.error, anyio.EndOfStream)

    async def test_aclose_wakes_a_local_pending_receive(self, pair: Pair) -> None:
        _, right = pair
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            await right.aclose()
        assert isinstance(call.error, anyio.ClosedResourceError)

    async def test_operations_after_aclose_raise_closed(self, pair: Pair) -> None:
        left, right = pair
        await left.aclose()
        await left.aclose()  # idempotent
        with pytest.raises(anyio.ClosedResourceError):
            await left.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await left.send(b"x")
        with pytest.raises(anyio.ClosedResourceError):
            await left.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_send_after_the_peer_closed_is_broken(self, pair: Pair) -> None:
        left, right = pair
        await right.aclose()
        with pytest.raises(anyio.BrokenResourceError) as exc_info:
            await left.send(b"x")
        assert exc_info.value.__cause__ is None
        with pytest.raises(anyio.BrokenResourceError):  # and again
            await left.send(b"x")

    async def test_two_receivers_are_busy(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            first = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError, match="reading from"):
                await right.receive()
            await left.send(b"x")
        assert first.value == b"x"  # the first receive wasn't disturbed

    async def test_two_senders_are_busy(self, pair: Pair, is_lockstep: bool) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            # Started together, so the second enters while the first one checkpoints
            # (or, on a lockstep pair, waits for the receive).
            first = start_send(tg, left, b"1")
            second = start_send(tg, left, b"2")
            await anyio.wait_all_tasks_blocked()
            eof = start(tg, left.send_eof)
            await anyio.wait_all_tasks_blocked()
            assert await right.receive() in (b"1", b"2")
        errors = [call.error for call in (first, second)]
        assert sum(isinstance(error, anyio.BusyResourceError) for error in errors) == 1
        assert errors.count(None) == 1
        # send_eof shares the guard with send, but only a lockstep send is still busy.
        if is_lockstep:
            assert isinstance(eof.error, anyio.BusyResourceError)
            assert "writing to" in str(eof.error)
        else:
            assert eof.error is None

    async def test_every_method_is_a_checkpoint(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"data")
            await anyio.wait_all_tasks_blocked()
            await assert_checkpoint(right.receive)  # data available: consumed none
            assert await right.receive() == b"data"
        await assert_checkpoint(lambda: left.send(b"lost"))
        await assert_checkpoint(lambda: left.send(b""))
        await assert_checkpoint(left.send_eof)
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"kept")  # neither "lost" nor an EOF were sent
            assert await right.receive() == b"kept"
        await assert_checkpoint(left.aclose)
        with pytest.raises(anyio.ClosedResourceError):  # closed, although cancelled
            await left.send(b"x")
        await assert_checkpoint(left.aclose)
        await assert_checkpoint(left.receive)  # a closed stream checkpoints too
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_cancelled_pending_receive_consumes_nothing(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert call.cancelled
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"after")
            assert await right.receive() == b"after"

    async def test_anyio_buffered_stream_reads_exactly(self, pair: Pair) -> None:
        left, right = pair
        left.trickle = 1
        buffered = BufferedByteReceiveStream(right)
        async with anyio.create_task_group() as tg:

            async def send_lines() -> None:
                await left.send(b"GET / HTTP/1.1\r\n")
                await left.send(b"\r\nbody")

            tg.start_soon(send_lines)
            assert await buffered.receive_until(b"\r\n\r\n", 100) == b"GET / HTTP/1.1"
            assert await buffered.receive_exactly(4) == b"body"

    async def test_tls_over_the_pair(
        self,
        pair: Pair,
        is_lockstep: bool,
        ca: trustme.CA,
        server_ssl_context: ssl.SSLContext,
        client_ssl_context: ssl.SSLContext,
    ) -> None:
        left, right = pair
        right.trickle = 7  # and small reads, for good measure
        if is_lockstep:
            # anyio's TLSStream flushes its writes before it reads, so it can't write and
            # read at once. A TLS 1.3 server sends session tickets right after the
            # handshake, while the client sends its first data: over a transport without
            # a buffer, both sends wait for the other side to read, for ever. No tickets,
            # no deadlock. (Over a socket, the kernel buffers are the way out.)
            server_ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost").configure_cert(server_ssl_context)
            server_ssl_context.num_tickets = 0

        async def serve() -> None:
            server = await TLSStream.wrap(right, server_side=True, ssl_context=server_ssl_context)
            async for chunk in server:
                await server.send(chunk.upper())
            await server.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            client = await TLSStream.wrap(
                left, hostname="localhost", ssl_context=client_ssl_context
            )
            await client.send(b"hello over tls")
            received = b""
            while len(received) < len(b"HELLO OVER TLS"):
                received += await client.receive()
            assert received == b"HELLO OVER TLS"
            await client.aclose()


class TestFaultControls:
    """swallow, paused, trickle, delay_eof and reset, on both pairs."""

    def test_defaults_and_no_event_loop_needed(self, pair: Pair) -> None:
        left, _ = pair
        assert left.swallow is False
        assert left.paused is False
        assert left.trickle is None
        assert left.delay_eof is False
        left.paused = True
        left.paused = False  # flushing wakes nobody, and needs no event loop
        left.delay_eof = True
        left.delay_eof = False
        left.reset()

    async def test_swallow_drops_the_bytes_sent_meanwhile(self, pair: Pair) -> None:
        left, right = pair
        left.swallow = True
        await left.send(b"lost")  # returns at once, even on a lockstep pair
        left.swallow = False
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"kept")
            assert await right.receive() == b"kept"

    async def test_swallow_drops_only_one_direction(self, pair: Pair) -> None:
        left, right = pair
        left.swallow = True
        async with anyio.create_task_group() as tg:
            start_send(tg, right, b"to left")
            assert await left.receive() == b"to left"

    async def test_swallow_lets_the_eof_through(self, pair: Pair) -> None:
        left, right = pair
        left.swallow = True
        await left.send(b"lost")
        await left.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_swallow_with_delay_eof_hides_everything(self, pair: Pair) -> None:
        left, right = pair
        left.swallow = True
        left.delay_eof = True
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await left.send(b"lost")
            await left.aclose()
            await anyio.wait_all_tasks_blocked()
            assert not call.done
            left.delay_eof = False
        assert isinstance(call.error, anyio.EndOfStream)

    async def test_paused_holds_bytes_and_eof_until_resumed(
        self, pair: Pair, is_lockstep: bool
    ) -> None:
        left, right = pair
        left.paused = True
        async with anyio.create_task_group() as tg:
            receiving = start(tg, right.receive)

            async def send_all() -> None:
                await left.send(b"ab")
                await left.send(b"c")
                await left.send_eof()

            sending = start(tg, send_all)
            await anyio.wait_all_tasks_blocked()
            assert not receiving.done
            # A memory pair buffers without limit; a lockstep pair has to wait.
            assert sending.done is not is_lockstep
            left.paused = False
            await anyio.wait_all_tasks_blocked()
            assert receiving.done
            assert isinstance(receiving.value, bytes)
            assert receiving.value + await receive_all(right) == b"abc"
        assert sending.done
        assert sending.error is None

    async def test_paused_keeps_what_was_delivered_before(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"before")
            await anyio.wait_all_tasks_blocked()
            left.paused = True
            assert await right.receive() == b"before"
        left.paused = False
        await left.send_eof()
        left.paused = True  # an EOF already delivered is not taken back
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_paused_holds_the_eof_of_aclose(self, pair: Pair) -> None:
        left, right = pair
        left.paused = True
        await left.aclose()
        async with anyio.create_task_group() as tg:
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            assert not call.done
            left.paused = False  # also allowed after the stream is closed
        assert isinstance(call.error, anyio.EndOfStream)

    async def test_trickle_delivers_in_chunks(self, pair: Pair) -> None:
        left, right = pair
        left.trickle = 2
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"abcde")
            assert await right.receive() == b"ab"
            assert await right.receive() == b"cd"
            assert await right.receive(1) == b"e"  # the smaller limit wins
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"fgh")
            await anyio.wait_all_tasks_blocked()
            left.trickle = None  # applies to bytes in flight
            assert await right.receive() == b"fgh"

    @pytest.mark.parametrize("value", [0, -3])
    def test_trickle_rejects_below_one(self, pair: Pair, value: int) -> None:
        left, _ = pair
        with pytest.raises(ValueError, match="positive"):
            left.trickle = value
        assert left.trickle is None

    @pytest.mark.parametrize("close", [False, True], ids=["send_eof", "aclose"])
    async def test_delay_eof_holds_only_the_eof(self, pair: Pair, close: bool) -> None:
        left, right = pair
        left.delay_eof = True
        async with anyio.create_task_group() as tg:

            async def send_then_eof() -> None:
                await left.send(b"bye")
                await (left.aclose() if close else left.send_eof())

            tg.start_soon(send_then_eof)
            assert await right.receive() == b"bye"
            call = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            assert not call.done
            if close:  # only the EOF is delayed: the peer's sends still break
                with pytest.raises(anyio.BrokenResourceError):
                    await right.send(b"x")
            left.delay_eof = False
        assert isinstance(call.error, anyio.EndOfStream)

    async def test_delay_eof_after_delivery_changes_nothing(self, pair: Pair) -> None:
        left, right = pair
        await left.send_eof()
        left.delay_eof = True
        with pytest.raises(anyio.EndOfStream):
            await right.receive()

    async def test_reset_breaks_pending_receives_on_both_sides(self, pair: Pair) -> None:
        left, right = pair
        async with anyio.create_task_group() as tg:
            on_left = start(tg, left.receive)
            on_right = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            left.reset()
        assert_reset(on_left.error)
        assert_reset(on_right.error)

    @pytest.mark.parametrize("paused", [False, True], ids=["buffered", "held"])
    @pytest.mark.parametrize("side", [0, 1], ids=["on_sender", "on_receiver"])
    async def test_reset_drops_bytes_in_flight(
        self, make_pair: PairMaker, is_lockstep: bool, side: int, paused: bool
    ) -> None:
        left, right = pair = make_pair()
        left.paused = paused
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"in flight")
            await anyio.wait_all_tasks_blocked()
            pair[side].reset()
            left.paused = False
        with pytest.raises(anyio.BrokenResourceError) as exc_info:
            await right.receive()
        assert_reset(exc_info.value)
        if is_lockstep:
            assert_reset(sending.error)
        else:
            assert sending.error is None

    async def test_after_reset_operations_are_broken_until_closed(self, pair: Pair) -> None:
        left, right = pair
        right.reset()
        for stream in pair:
            for operation in (stream.receive, partial(stream.send, b"x"), stream.send_eof):
                with pytest.raises(anyio.BrokenResourceError) as exc_info:
                    await operation()
                assert_reset(exc_info.value)
        await left.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await left.receive()
        with pytest.raises(anyio.BrokenResourceError):  # still reset, not EndOfStream
            await right.receive()
        await right.aclose()

    async def test_reset_raises_a_fresh_cause_each_time(self, pair: Pair) -> None:
        left, _ = pair
        left.reset()
        causes = []
        for _ in range(2):
            with pytest.raises(anyio.BrokenResourceError) as exc_info:
                await left.receive()
            causes.append(exc_info.value.__cause__)
        assert causes[0] is not causes[1]


class TestMemoryPair:
    """What only the unbounded pair does: send never blocks."""

    async def test_send_never_blocks(self) -> None:
        left, right = memory_stream_pair()
        chunk = bytes(range(256)) * 256
        for _ in range(64):
            await left.send(chunk)
        await left.send_eof()
        received = await receive_all(right)
        assert received == chunk * 64

    async def test_one_task_can_send_then_receive(self) -> None:
        left, right = memory_stream_pair()
        await left.send(b"ping")
        assert await right.receive() == b"ping"
        await right.send(b"pong")
        assert await left.receive() == b"pong"

    async def test_sends_coalesce(self) -> None:
        left, right = memory_stream_pair()
        await left.send(b"a")
        await left.send(b"b")
        assert await right.receive() == b"ab"

    async def test_aclose_delivers_the_bytes_sent_before_the_eof(self) -> None:
        left, right = memory_stream_pair()
        await left.send(b"last words")
        await left.aclose()
        assert await receive_all(right) == b"last words"

    async def test_aclose_drops_what_it_did_not_receive(self) -> None:
        left, right = memory_stream_pair()
        await right.send(b"never read")
        await left.aclose()
        with pytest.raises(anyio.BrokenResourceError):
            await right.send(b"x")

    async def test_swallowed_peer_trips_a_timeout(self) -> None:
        # The shape of a keepalive test: the answer never comes.
        client, server = memory_stream_pair()
        server.swallow = True
        await client.send(b"ping")
        assert await server.receive() == b"ping"
        await server.send(b"pong")
        with anyio.move_on_after(0) as scope:
            await client.receive()
        assert scope.cancelled_caught

    async def test_cancelled_receive_loses_nothing_when_data_arrives(self) -> None:
        left, right = memory_stream_pair()
        got: list[bytes] = []
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def receiver() -> None:
                with scope:
                    got.append(await right.receive())

            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            # The data wakes the receiver, which is cancelled before it runs: it either
            # returns the data (trio) or raises the cancellation (asyncio), never both.
            await left.send(b"data")
            scope.cancel()
        await left.send_eof()
        assert b"".join(got) + await receive_all(right) == b"data"


class TestLockstepPair:
    """What only the lockstep pair does: send waits for the receive."""

    async def test_send_waits_until_everything_is_received(self) -> None:
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"abcdef")
            await anyio.wait_all_tasks_blocked()
            assert not sending.done
            assert await right.receive(2) == b"ab"
            await anyio.wait_all_tasks_blocked()
            assert not sending.done
            assert await right.receive() == b"cdef"
            await anyio.wait_all_tasks_blocked()
            assert sending.done
        assert sending.error is None

    async def test_send_and_receive_are_independent_directions(self) -> None:
        # Both ends are stuck in send(); each can still receive, so nothing deadlocks.
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            left_sending = start_send(tg, left, b"to right")
            right_sending = start_send(tg, right, b"to left")
            await anyio.wait_all_tasks_blocked()
            assert not left_sending.done
            assert not right_sending.done
            assert await left.receive() == b"to left"
            assert await right.receive() == b"to right"
        assert left_sending.error is None
        assert right_sending.error is None

    async def test_cancelled_send_before_any_receive_leaves_no_trace(self) -> None:
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"withdrawn")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert sending.cancelled
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"next")
            assert await right.receive() == b"next"

    async def test_cancelled_send_keeps_the_received_prefix_only(self) -> None:
        left, right = lockstep_stream_pair()
        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:

            async def send_in_scope() -> None:
                with scope:
                    await left.send(b"abcdef")

            sending = start(tg, send_in_scope)
            await anyio.wait_all_tasks_blocked()
            assert await right.receive(2) == b"ab"
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert sending.done
            assert scope.cancelled_caught
            start_send(tg, left, b"XYZ")
            assert await right.receive() == b"XYZ"  # never "cdef"

    async def test_send_cancelled_as_it_completes_delivers_exactly_once(self) -> None:
        left, right = lockstep_stream_pair()
        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:

            async def send_in_scope() -> None:
                with scope:
                    await left.send(b"abc")

            tg.start_soon(send_in_scope)
            await anyio.wait_all_tasks_blocked()
            assert await right.receive() == b"abc"
            # The sender is woken up but hasn't run: it may return or raise the
            # cancellation (asyncio), but the peer has the bytes either way.
            scope.cancel()
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"d")
            assert await right.receive() == b"d"

    async def test_pending_send_breaks_when_the_peer_closes(self) -> None:
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"abcdef")
            await anyio.wait_all_tasks_blocked()
            assert await right.receive(2) == b"ab"
            await right.aclose()
        assert isinstance(sending.error, anyio.BrokenResourceError)

    async def test_pending_send_is_closed_by_a_local_aclose(self) -> None:
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"abcdef")
            await anyio.wait_all_tasks_blocked()
            assert await right.receive(2) == b"ab"
            await left.aclose()
            # The rest is withdrawn, at once: the peer gets the EOF right after "ab".
            with pytest.raises(anyio.EndOfStream):
                await right.receive()
        assert isinstance(sending.error, anyio.ClosedResourceError)

    async def test_pending_send_breaks_on_reset(self) -> None:
        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"abc")
            await anyio.wait_all_tasks_blocked()
            right.reset()
        assert_reset(sending.error)

    async def test_paused_send_waits_for_resume_and_receive(self) -> None:
        left, right = lockstep_stream_pair()
        left.paused = True
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"abc")
            receiving = start(tg, right.receive)
            await anyio.wait_all_tasks_blocked()
            assert not sending.done
            assert not receiving.done
            left.paused = False
        assert receiving.value == b"abc"
        assert sending.error is None

    async def test_cancelled_paused_send_withdraws_the_held_bytes(self) -> None:
        left, right = lockstep_stream_pair()
        left.paused = True
        async with anyio.create_task_group() as tg:
            sending = start_send(tg, left, b"held")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert sending.cancelled
        left.paused = False
        async with anyio.create_task_group() as tg:
            start_send(tg, left, b"next")
            assert await right.receive() == b"next"
