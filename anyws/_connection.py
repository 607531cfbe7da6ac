"""A WebSocket connection over an anyio byte stream.

Theory of operation
-------------------
A `Connection` joins a byte stream and a sans-I/O `Protocol`. It runs three
background tasks in a task group owned by the ``async with`` that opened the
connection (`connect` or `serve`):

- the **reader** receives bytes, feeds the protocol, queues data frames for
  `recv`, resolves pings, and hands whatever the protocol wants to send (pongs,
  the close echo) to the writer. It never waits on the writer: a peer that stops
  reading cannot stop us from reading, so no deadlock like websockets-trio's.
  When ``max_queue`` messages wait for `recv`, it stops reading, so TCP pushes
  back on the peer.
- the **writer** is the only task that writes to the stream. Everything sent is
  appended to an output buffer as whole frames, and the writer writes the
  buffer in one call; frames queued while a write is in flight go out together.
  Because frames are appended whole and synchronously, cancelling `send` can
  never leave half a frame on the wire. `broadcast` appends without waiting;
  when that leaves more than ``write_limit`` bytes waiting, the writer must get
  back under it by a deadline (on its own cancel scope, not in another task),
  or it fails the connection with 1013.
- the **keepalive** task sends a ping every ``ping_interval`` seconds and fails
  the connection with 1011 when the pong doesn't arrive within ``ping_timeout``.

The writer starts with the first bytes it must write. On anyws' own asyncio
transport (`AsyncioStream`, which `connect` and `serve` choose on asyncio for
TCP), three shortcuts spare a turn of the event loop per message, with the same
guarantees: the reader's work on the bytes that arrive runs in the transport's
callback while the reader task waits (`_feed`); a frame is written from the
task that queues it when nothing waits for the writer and no burst is under way
(`_flush`; frames are still written whole, and without waiting); and the
keepalive runs on the event loop's timers instead of a task. Code that runs in
those callbacks calls nothing that needs anyio to know the running event loop.

Every wait is bounded once the connection is closing: when the closing handshake
starts (either side), the reader gets a deadline ``close_timeout`` away; when
it passes, the transport is aborted with `anyio.aclose_forcefully`, the reader
ends, and every waiter is woken. A connection whose reader ended is CLOSED.

Background tasks never raise into the task group, so no `ExceptionGroup` reaches
a user: a transport error is recorded and becomes the ``__cause__`` of the
`ConnectionClosed` that `recv` and `send` raise. Transport errors are translated
in one place, `_translate_transport_errors`.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import os
import uuid
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSStream

from ._asyncio import AsyncioStream, Waiter, close_forcefully
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidState,
    ProtocolError,
)
from .sansio import SEND_EOF, Event, Frame, Opcode, Protocol, State
from .sansio.extensions import PerMessageDeflate


if TYPE_CHECKING:
    from .sansio._http11 import Request, Response


__all__ = ["Connection", "Data", "DataLike"]

Data = str | bytes
DataLike = str | bytes | bytearray | memoryview

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PING, _PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

#: Errors that mean the transport broke underneath us; `ssl.SSLError` is an OSError.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)

#: How many bytes to ask a byte stream for at once: large reads, fewer wake-ups.
READ_SIZE = 2**18

#: The reason of the 1013 close of a connection that `broadcast` found too slow.
SLOW_CONSUMER = "slow consumer"

#: The reason of the 1008 close of a connection whose peer sends pings (or close
#: frames) faster than it reads the replies: more than ``write_limit`` bytes of them wait.
PING_FLOOD = "too many pings"


class _PongWaiter:
    """What `Connection.ping` returns: await it for the round-trip time in seconds."""

    __slots__ = ("_connection", "_event", "_latency")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._event = anyio.Event()
        self._latency: float | None = None

    async def wait(self) -> float:
        """Wait for the pong and return the latency in seconds.

        Raises:
            ConnectionClosed: The connection closed before the pong arrived.

        Cancelling the wait leaves the ping registered: a later pong still
        updates `Connection.latency`.
        """
        await self._event.wait()
        if self._latency is None:
            raise self._connection._closed_exc()
        return self._latency

    def __await__(self) -> Generator[Any, None, float]:
        return self.wait().__await__()


class Connection:
    """A WebSocket connection; the common base of client and server connections.

    Connections are created by `connect` and `serve`, never directly. Subclass
    `ClientConnection` or `ServerConnection` and pass a factory (for example
    ``functools.partial(MyConnection, extra=42)``) as ``create_connection`` to
    add behaviour.
    """

    # Slots: a connection's attributes take a few hundred bytes instead of a
    # dict's 1.5 KB; "__dict__" keeps other attributes possible (subclasses
    # and tests add some), at no cost until one is set.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_aborted",
        "_clock",
        "_close_deadline",
        "_closed_event",
        "_drain_deadline",
        "_drained",
        "_fragmenting",
        "_frames",
        "_is_closed",
        "_keepalive_payload",
        "_keepalive_scope",
        "_keepalive_timer",
        "_loop",
        "_messages",
        "_new_event",
        "_out",
        "_out_size",
        "_pings",
        "_read_scope",
        "_receive",
        "_recv_busy",
        "_recv_event",
        "_resume_reading",
        "_send_lock",
        "_stopped",
        "_streaming_text",
        "_task_group",
        "_transport_exc",
        "_write_now",
        "_write_wanted",
        "_writer_cancelled",
        "_writer_done",
        "_writer_scope",
        "_writer_state",
        "_writing",
        "close_timeout",
        "debug",
        "id",
        "latency",
        "logger",
        "max_queue",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "request",
        "response",
        "transport",
        "write_limit",
    )

    def __init__(
        self,
        stream: anyio.abc.AnyByteStream,
        protocol: Protocol,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | None = 16,
        write_limit: int = 2**15,
    ) -> None:
        self.transport = stream
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_queue = max_queue
        self.write_limit = write_limit
        #: Unique identifier of the connection, for logs.
        self.id: uuid.UUID = uuid.uuid4()
        #: The logger of the connection's protocol.
        self.logger = protocol.logger
        self.debug = protocol.debug
        #: Round-trip time of the last keepalive ping, in seconds; 0 until one completes.
        self.latency: float = 0.0
        #: The opening handshake's request (set by the client or server).
        self.request: Request | None = None
        #: The opening handshake's response (set by the client or server).
        self.response: Response | None = None

        if isinstance(stream, anyio.abc.ByteStream):
            byte_stream = stream

            async def receive() -> bytes:
                return await byte_stream.receive(READ_SIZE)

            self._receive = receive
        else:
            self._receive = stream.receive
        #: Writes without waiting, from any task, when the stream allows it (see _flush).
        self._write_now = stream.try_write if isinstance(stream, AsyncioStream) else None
        #: anyio's clock. On anyws' asyncio transport, the loop's (the same), also
        #: readable in the transport's callbacks (_feed), outside any task, where
        #: anyio may not know which event loop runs (under asyncio.run()).
        self._loop = stream.loop if isinstance(stream, AsyncioStream) else None
        self._clock: Callable[[], float] = (
            anyio.current_time if self._loop is None else self._loop.time
        )
        #: Makes the one-shot events that recv(), send() and the tasks wait on:
        #: futures on anyws' asyncio transport, cheaper than anyio.Event.
        self._new_event: Callable[[], anyio.Event | Waiter] = (
            stream.new_waiter if isinstance(stream, AsyncioStream) else anyio.Event
        )

        # Incoming: frames waiting for recv(), and how many whole messages they hold.
        self._frames: deque[Frame] = deque()
        self._messages = 0
        self._recv_event: anyio.Event | Waiter | None = None
        self._recv_busy = False
        self._resume_reading: anyio.Event | Waiter | None = None
        self._streaming_text = False

        # Outgoing: bytes waiting for the writer.
        self._out: list[bytes] = []
        self._out_size = 0
        # An upper bound of the bytes of replies to the peer's control frames in _out.
        self._replies = 0
        self._write_wanted: anyio.Event | Waiter | None = None
        self._drained: anyio.Event | Waiter | None = None
        # Created when a send() must wait (backpressure, a fragmented message):
        # until then, send() queues whole frames, synchronously.
        self._send_lock: anyio.Lock | None = None
        # The writer task starts when something is queued for it (_wake_writer):
        # on anyws' asyncio transport, most connections write through and never
        # need it. 0: not started, 1: running, 2: done.
        self._writer_state = 0
        self._writer_done: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        # broadcast() never waits: when it leaves more than write_limit bytes
        # waiting, the writer must get below it by this deadline (its scope's).
        self._drain_deadline = math.inf

        # Closing.
        self._close_deadline = math.inf
        # The reader's and the writer's scopes exist while they run; _stop()
        # cancels them (and those not started yet, as they start).
        self._read_scope: anyio.CancelScope | None = None
        self._writer_scope: anyio.CancelScope | None = None
        self._stopped = False
        self._writer_cancelled = False
        # The keepalive task's scope; on anyws' asyncio transport, a timer instead
        # (no task): the next ping, or the pong's deadline.
        self._keepalive_scope: anyio.CancelScope | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._keepalive_payload: bytes | None = None
        # Set when the reader ended; the event is created for those who wait.
        self._is_closed = False
        self._closed_event: anyio.Event | None = None
        self._transport_exc: BaseException | None = None
        self._aborted = False

        # The waiter is None for the timer-driven keepalive's pings.
        self._pings: dict[bytes, tuple[_PongWaiter | None, float]] = {}
        self._fragmenting = False  # send() is sending a fragmented message
        self._writing = False  # the writer is in the stream's send()

    # Public API ----------------------------------------------------------

    @property
    def state(self) -> State:
        """The state of the connection (CONNECTING, OPEN, CLOSING or CLOSED)."""
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        """The close code received; 1006 without one; ``None`` until CLOSED."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` until CLOSED."""
        return self.protocol.close_reason

    @property
    def local_address(self) -> Any:
        """The local address of the transport, as anyio reports it, or ``None``."""
        return self.transport.extra(anyio.abc.SocketAttribute.local_address, None)

    @property
    def remote_address(self) -> Any:
        """The remote address of the transport, as anyio reports it, or ``None``."""
        return self.transport.extra(anyio.abc.SocketAttribute.remote_address, None)

    @overload
    async def recv(self, decode: None = None) -> Data: ...
    @overload
    async def recv(self, decode: Literal[True]) -> str: ...
    @overload
    async def recv(self, decode: Literal[False]) -> bytes: ...

    async def recv(self, decode: bool | None = None) -> Data:
        """Receive the next message.

        Args:
            decode: ``None`` returns text messages as `str` and binary messages as
                `bytes`; ``True`` decodes binary messages as UTF-8 too; ``False``
                returns text messages as UTF-8 `bytes`, without decoding.

        Raises:
            ConnectionClosedOK: The connection closed normally, and every message
                received before was returned.
            ConnectionClosedError: The connection closed with an error or was lost;
                the transport error, if any, is the ``__cause__``.
            ConcurrencyError: Another task is in `recv` or `recv_streaming`.

        Cancellation (``anyio.fail_after`` around it, for example) loses nothing:
        a message that arrives later is returned by the next call, and the
        connection stays usable.
        """
        if self._recv_busy:
            raise ConcurrencyError(
                "cannot call recv while another task is already running recv or recv_streaming"
            )
        self._recv_busy = True
        try:
            if self._messages == 0:
                await self._wait_for_frames(whole_message=True)
            else:
                await anyio.lowlevel.checkpoint_if_cancelled()
            frames = self._frames
            frame = frames.popleft()
            # A message partly consumed by recv_streaming() resumes with CONT frames.
            text = self._streaming_text if frame.opcode is _CONT else frame.opcode is _TEXT
            if frame.fin:
                data: bytes = frame.data
            else:
                chunks = [frame.data]
                while True:
                    frame = frames.popleft()
                    chunks.append(frame.data)
                    if frame.fin:
                        break
                data = b"".join(chunks)
            self._messages -= 1
            self._streaming_text = False
            self._message_consumed()
        finally:
            self._recv_busy = False
        if decode is None:
            decode = text
        return data.decode() if decode else data

    @overload
    def recv_streaming(self, decode: None = None) -> AsyncIterator[Data]: ...
    @overload
    def recv_streaming(self, decode: Literal[True]) -> AsyncIterator[str]: ...
    @overload
    def recv_streaming(self, decode: Literal[False]) -> AsyncIterator[bytes]: ...

    def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Receive the next message fragment by fragment, as frames arrive.

        Text fragments are decoded incrementally, so a character split between
        frames is yielded whole. The iterator ends with the message.

        Raises:
            ConnectionClosedOK, ConnectionClosedError: As for `recv`.
            ConcurrencyError: Another task is in `recv` or `recv_streaming`.

        Cancellation while waiting for a fragment loses nothing: the fragments
        not yet yielded are returned by the next `recv_streaming` (or, joined,
        by `recv`). Leaving the loop early (``break``) is safe too: the rest of
        the message goes to the next `recv_streaming` or `recv`.
        """
        return _FragmentIterator(self, decode)

    async def _next_fragment(self) -> tuple[Frame, bool]:
        """Take the next frame of the message being received, and whether it's text."""
        # Busy while waiting and taking a frame, not between fragments: a caller
        # that stops iterating leaves the rest of the message for the next recv()
        # or recv_streaming().
        if self._recv_busy:
            raise ConcurrencyError(
                "cannot call recv_streaming while another task is already running "
                "recv or recv_streaming"
            )
        self._recv_busy = True
        try:
            if not self._frames:
                await self._wait_for_frames(whole_message=False)
            else:
                await anyio.lowlevel.checkpoint_if_cancelled()
            frame = self._frames.popleft()
            if frame.opcode is not _CONT:
                self._streaming_text = frame.opcode is _TEXT
            text = self._streaming_text
            if frame.fin:
                self._messages -= 1
                self._streaming_text = False
                self._message_consumed()
        finally:
            self._recv_busy = False
        return frame, text

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate on incoming messages; ends on a normal close, raises on an abnormal one.

        Leaving the loop early (``break``, an exception) loses nothing and leaves
        nothing to clean up: the next message waits for the next `recv`.
        """
        return _MessageIterator(self)

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        text: bool | None = None,
        *,
        compress: bool = True,
    ) -> None:
        """Send a message.

        A `str` is sent as a text frame, a bytes-like object as a binary frame;
        ``text=True`` sends bytes (already UTF-8) as text, ``text=False`` sends a
        `str` as binary. An iterable or async iterable of those is sent as one
        fragmented message, a frame per item; other messages wait until it ends.

        ``compress=False`` sends this message uncompressed on a connection that
        negotiated permessage-deflate (RFC 7692 allows it): for data that is
        already compressed, or too small to gain anything.

        When more than ``write_limit`` bytes wait to be written, `send` waits for
        the writer to catch up.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            TypeError: The message, or a fragment, has an unsupported type, or
                fragments mix text and bytes.

        Cancellation: the frame is queued whole before `send` waits, so a
        cancelled `send` never corrupts the stream; the message may still be
        delivered. Cancelling `send` of a fragmented message part-way, or an
        error raised by its iterator, leaves an unfinished message on the wire:
        the connection is then failed with 1011.
        """
        if isinstance(message, str | bytes | bytearray | memoryview):
            lock = self._send_lock
            if lock is None or not lock.locked():
                # No other send() in progress: queue the frame whole, now.
                self._send_frame(message, text, fin=True, first=True, compress=compress)
                if self._out_size <= self.write_limit:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    return
                # Wait for the writer holding the lock (taken at once: nothing
                # awaited since the check), so that other sends wait their turn.
                lock = self._get_send_lock()
                async with lock:
                    await self._wait_drained()
                return
            async with lock:
                self._send_frame(message, text, fin=True, first=True, compress=compress)
                await self._wait_drained()
            return
        if isinstance(message, Iterable):
            iterator: Any = iter(message)
            aiter_ = None
        elif isinstance(message, AsyncIterable):
            aiter_ = aiter(message)
            iterator = None
        else:
            raise TypeError(f"message has unsupported type {type(message).__name__}")
        async with self._get_send_lock():
            await self._send_fragments(iterator, aiter_, text, compress)

    def _get_send_lock(self) -> anyio.Lock:
        lock = self._send_lock
        if lock is None:
            lock = self._send_lock = anyio.Lock(fast_acquire=True)
        return lock

    async def _send_fragments(
        self,
        iterator: Iterator[DataLike] | None,
        aiter_: AsyncIterator[DataLike] | None,
        text: bool | None,
        compress: bool,
    ) -> None:
        is_text: bool | None = None
        self._fragmenting = True
        try:
            if iterator is not None:
                # Every fragment is at hand: look one ahead so that the last one
                # carries FIN, and send no empty frame.
                pending = next(iterator, None)
                while pending is not None:
                    fragment = next(iterator, None)
                    is_text = self._send_fragment(
                        pending, text, is_text, fin=fragment is None, compress=compress
                    )
                    pending = fragment
                    await self._wait_drained()
            else:
                assert aiter_ is not None
                # Fragments come when they come: each goes out at once, and an empty
                # frame carrying FIN ends the message, as websockets does.
                async for fragment in aiter_:
                    is_text = self._send_fragment(
                        fragment, text, is_text, fin=False, compress=compress
                    )
                    await self._wait_drained()
                if is_text is not None:
                    self._send_frame(b"", text, fin=True, first=False)
                    await self._wait_drained()
        except BaseException:
            # Once a frame went out, the message can't be finished: fail the
            # connection (RFC 6455, 7.1.7). Before that, nothing happened.
            if is_text is not None and self.protocol.state is State.OPEN:
                self._fail(1011, "error in fragmented message")
            raise
        finally:
            self._fragmenting = False

    def _send_fragment(
        self, data: DataLike, text: bool | None, is_text: bool | None, *, fin: bool, compress: bool
    ) -> bool:
        """Queue one fragment; return whether the message is text."""
        if is_text is None:
            return self._send_frame(data, text, fin=fin, first=True, compress=compress)
        if text is None and isinstance(data, str) != is_text:
            raise TypeError("all fragments must be of the same type: str or bytes-like")
        self._send_frame(data, text, fin=fin, first=False)
        return is_text

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake, and wait until the connection is closed.

        Waits at most ``close_timeout`` for the peer's close frame and for TCP to
        close; then aborts the transport. Idempotent: when the connection is
        already closing or closed, only waits for it to be closed.

        Raises:
            ProtocolError: ``code`` may not be sent, or ``reason`` is too long.

        Cancellation stops the wait, not the closing: the handshake goes on, and
        the transport is still aborted after ``close_timeout``.
        """
        if self.protocol.state is State.OPEN:
            if self._fragmenting:
                # A fragmented message is in progress: it can't be finished.
                self._fail(1011, "close during fragmented message")
            else:
                try:
                    self.protocol.send_close(code, reason)
                except InvalidState:
                    pass
                self._flush()
                self._closing_started()
        await self._wait_closed()

    async def aclose(self) -> None:
        """Close with code 1000: anyio's `~anyio.abc.AsyncResource` protocol."""
        await self.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed.

        Cancellation (a timeout, for example) stops the wait and nothing else.
        """
        await self._wait_closed()

    async def _wait_closed(self) -> None:
        if self._is_closed:
            await anyio.lowlevel.checkpoint()
            return
        event = self._closed_event
        if event is None:
            event = self._closed_event = anyio.Event()
        await event.wait()

    async def ping(self, data: DataLike | None = None) -> Awaitable[float]:
        """Send a ping; return an awaitable that gives the latency when the pong arrives.

        ``await ws.ping()`` sends the ping; ``await (await ws.ping())`` also waits
        for the pong and returns the round-trip time in seconds. A pong answers
        every ping sent before the one it matches (RFC 6455, section 5.5.3).

        Args:
            data: The payload, at most 125 bytes; four random bytes by default.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ConcurrencyError: A ping with the same payload waits for its pong.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if data is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        else:
            payload = data.encode() if isinstance(data, str) else bytes(data)
            if payload in self._pings:
                raise ConcurrencyError("already waiting for a pong with the same data")
        self._check_sendable()
        self.protocol.send_ping(payload)
        waiter = _PongWaiter(self)
        self._pings[payload] = (waiter, self._clock())
        self._flush()
        return waiter

    async def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically).

        Raises:
            ConnectionClosed: The connection is closed or closing.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_sendable()
        self.protocol.send_pong(data.encode() if isinstance(data, str) else bytes(data))
        self._flush()

    # Internals: receiving --------------------------------------------------

    async def _wait_for_frames(self, *, whole_message: bool) -> None:
        while (self._messages == 0) if whole_message else (not self._frames):
            if self._is_closed:
                raise self._closed_exc()
            event = self._recv_event = self._new_event()
            await event.wait()

    def _message_consumed(self) -> None:
        resume = self._resume_reading
        if resume is not None and (self.max_queue is None or self._messages < self.max_queue):
            self._resume_reading = None
            resume.set()

    def _closed_exc(self) -> ConnectionClosed:
        exc = self.protocol.close_exc
        cause = self._transport_exc
        if cause is None:
            cause = self.protocol.parser_exc
        exc.__cause__ = cause
        return exc

    def _check_sendable(self) -> None:
        if self.protocol.state is not State.OPEN:
            if self.protocol.state is State.CONNECTING:
                raise InvalidState("connection is connecting")
            raise self._closed_exc()

    # Internals: sending ----------------------------------------------------

    def _send_frame(
        self, data: DataLike, text: bool | None, *, fin: bool, first: bool, compress: bool = True
    ) -> bool:
        """Queue one data frame; return whether it was text."""
        self._check_sendable()
        protocol = self.protocol
        if isinstance(data, str):
            is_text = text is not False
            payload: bytes | bytearray | memoryview = data.encode()
        elif isinstance(data, bytes | bytearray | memoryview):
            is_text = text is True
            payload = data
        else:
            raise TypeError(f"message has unsupported type {type(data).__name__}")
        if not first:
            protocol.send_continuation(payload, fin)
        else:
            # The per-message switch of permessage-deflate: read when the first frame
            # of a message is encoded, which happens inside send_text/send_binary.
            deflate = None if compress else self._deflate()
            if deflate is not None:
                deflate.skip_next_message = True
            try:
                if is_text:
                    protocol.send_text(
                        payload if isinstance(payload, bytes) else bytes(payload), fin
                    )
                else:
                    protocol.send_binary(payload, fin)
            finally:
                if deflate is not None:
                    deflate.skip_next_message = False
        self._flush()
        return is_text

    def _deflate(self) -> PerMessageDeflate | None:
        """The negotiated permessage-deflate extension, if any."""
        for extension in self.protocol.extensions:
            if isinstance(extension, PerMessageDeflate):
                return extension
        return None

    def _flush(self, output: list[bytes] | None = None) -> None:
        """Hand the protocol's output (or ``output``) to the writer; never waits."""
        if output is None:
            output = self.protocol.data_to_send()
        if not output:
            return
        # Nothing waits for the writer: write from this task, and spare the hop to
        # the writer's. The stream refuses when it's busy, or in a burst (see
        # AsyncioStream.try_write): better left to the writer, in one write.
        # The EOF goes through a running writer, which then ends.
        # More than write_limit goes through the writer, so that send() waits for it.
        write_now = self._write_now
        if write_now is not None and not self._out:
            eof = output[-1] == SEND_EOF
            data = output[0] if len(output) == 1 else b"".join(output)
            if (
                (not eof or self._writer_state != 1)
                and len(data) <= self.write_limit
                and write_now(data, eof=eof and self._transport_exc is None)
            ):
                return
            output = [data, SEND_EOF] if eof and data else [data]
        self._out.extend(output)
        for chunk in output:
            self._out_size += len(chunk)
        self._wake_writer()

    def _wake_writer(self) -> None:
        """Tell the writer that bytes wait; start it the first time."""
        if self._writer_state == 0:
            task_group = self._task_group
            if task_group is None or self._is_closed or self._stopped:
                return  # _start starts it; or too late: nothing is written anymore
            self._writer_state = 1
            name = f"anyws {self.protocol.side.name.lower()} {self.id} writer"
            task_group.start_soon(self._run_writer, name=name)
            return
        wanted = self._write_wanted
        if wanted is not None:
            self._write_wanted = None
            wanted.set()

    def _send_broadcast(
        self,
        frame: bytes | None,
        payload: bytes,
        text: bool,
        *,
        drain_timeout: float | None,
        max_buffer: int | None,
    ) -> None:
        """Queue a message for `broadcast`, bounding what a slow peer makes us buffer.

        ``frame`` is the message already serialised (unmasked, uncompressed), for
        a connection that can send those very bytes; with ``None`` the message
        is framed here (masked on a client; uncompressed). Never waits.

        When more than ``max_buffer`` bytes already wait for the writer, the
        message is dropped and the connection fails with 1013. When this leaves
        more than ``write_limit`` bytes waiting, the writer must get back under
        ``write_limit`` within ``drain_timeout`` or it fails the connection
        with 1013 (see `_run_writer`).
        """
        if max_buffer is not None and self._out_size > max_buffer:
            if self.debug:
                self.logger.debug("! %d bytes waiting to be written", self._out_size)
            self._fail(1013, SLOW_CONSUMER)
            return
        if frame is None:
            self._send_frame(payload, text, fin=True, first=True, compress=False)
        else:
            self._flush()  # Keep the protocol's output, if any, in order.
            self._out.append(frame)
            self._out_size += len(frame)
            self._wake_writer()
        if self._out_size > self.write_limit and drain_timeout is not None:
            deadline = self._clock() + drain_timeout
            if deadline < self._drain_deadline:
                self._drain_deadline = deadline
                if self._writer_scope is not None:
                    self._writer_scope.deadline = deadline

    async def _wait_drained(self) -> None:
        """Wait while more than ``write_limit`` bytes wait for the writer.

        Raises:
            ConnectionClosed: The connection closed before they were written.
        """
        if self._out_size <= self.write_limit:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return
        while self._out_size > self.write_limit:
            if self._is_closed:
                raise self._closed_exc()
            drained = self._drained
            if drained is None or (isinstance(drained, Waiter) and drained.done()):
                # (A Waiter whose waiter was cancelled is cancelled: make another.)
                drained = self._drained = self._new_event()
            await drained.wait()

    # Internals: closing ----------------------------------------------------

    def _closing_started(self) -> None:
        """Give the reader a deadline: the closing handshake must finish in time."""
        if self.protocol.close_expected() and self._close_deadline == math.inf:
            timeout = self.close_timeout
            self._close_deadline = self._clock() + (math.inf if timeout is None else timeout)
            if self._read_scope is not None:
                self._read_scope.deadline = self._close_deadline
            resume = self._resume_reading
            if resume is not None:
                # Read on while closing, so the peer's close frame gets through.
                self._resume_reading = None
                resume.set()

    def _fail(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Fail the connection: send a close frame and close the transport soon.

        With ``abort``, the transport is closed at once after a best effort to
        write the close frame (a keepalive timeout: the peer is unresponsive).
        """
        if self.debug:
            self.logger.debug("! failing connection with code %d", code)
        self.protocol.fail(code, reason)
        self._flush()
        if abort:
            self._abort_soon()
        else:
            self._closing_started()

    def _abort_soon(self) -> None:
        """Wake the reader at once; it ends the connection and aborts the transport."""
        self._aborted = True
        self._close_deadline = -math.inf
        if self._read_scope is not None:
            self._read_scope.cancel()
        resume = self._resume_reading
        if resume is not None:
            self._resume_reading = None
            resume.set()

    # Background tasks ------------------------------------------------------

    def _start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start the reader, the writer and the keepalive task in ``task_group``."""
        self._task_group = task_group
        # Frames that came with the handshake may have made the protocol answer
        # (a pong, the close echo, a failing close): hand that to the writer.
        self._flush()
        self._closing_started()
        name = f"anyws {self.protocol.side.name.lower()} {self.id}"
        task_group.start_soon(self._run_reader, name=f"{name} reader")
        if self.ping_interval is not None:
            if self._loop is not None:
                timer = self._loop.call_later(self.ping_interval, self._keepalive_ping)
                self._keepalive_timer = timer
            else:
                self._keepalive_scope = anyio.CancelScope()
                task_group.start_soon(self._run_keepalive, name=f"{name} keepalive")

    def _stop(self) -> None:
        """Cancel the background tasks (the connection is being torn down)."""
        # Only the scopes of tasks still running: anyio's cancel() costs a repr of
        # the current task.
        self._stopped = True
        if self._read_scope is not None:
            self._read_scope.cancel()
        self._cancel_writer()
        if self._keepalive_scope is not None:
            self._keepalive_scope.cancel()
        self._cancel_keepalive_timer()

    def _record_transport_exc(self, exc: BaseException) -> None:
        if self._transport_exc is None and not self._aborted:
            # anyio wraps the OSError that broke the stream; the OSError says more.
            cause = exc.__cause__
            if isinstance(exc, anyio.BrokenResourceError) and isinstance(cause, OSError):
                exc = cause
            self._transport_exc = exc
            if self.debug:
                self.logger.debug("! transport error: %r", exc)

    def _feed(self, data: bytes) -> bool:
        """The reader's work on ``data``, done in anyws' asyncio transport's callback.

        Called while the reader task waits in ``receive()`` with nothing buffered
        (see `AsyncioStream.set_consumer`): the messages reach `recv` without a
        hop through the reader task. Returns ``False``, leaving the bytes to the
        reader, when the reader must stop reading (backpressure); wakes the
        reader when the connection is closed.
        """
        max_queue = self.max_queue
        protocol = self.protocol
        if protocol.paused or (
            max_queue is not None
            and self._messages >= max_queue
            and self._close_deadline == math.inf
        ):
            return False
        protocol.receive_data(data, max_messages=self._room(), defer_failure=self._messages > 0)
        self._process_events()
        self._flush_replies()
        if protocol.state is State.CLOSED:
            assert isinstance(self.transport, AsyncioStream)
            self.transport.interrupt_receive()
        else:
            self._closing_started()
            if protocol.paused or (max_queue is not None and self._messages >= max_queue):
                # The queue just filled: wake the reader so that it stops reading
                # now, as it does after a read of its own, rather than take (and
                # answer the pings of) the next bytes that arrive.
                assert isinstance(self.transport, AsyncioStream)
                self.transport.interrupt_receive()
        return True

    async def _run_reader(self) -> None:
        protocol = self.protocol
        receive = self._receive
        cancelled = False
        consuming = self._write_now is not None
        if consuming:
            assert isinstance(self.transport, AsyncioStream)
            self.transport.set_consumer(self._feed)
        try:
            # One scope for the whole loop, not one per read: its deadline is the
            # closing handshake's (set by _closing_started), and cancelling it
            # (_abort_soon) ends the connection.
            with anyio.CancelScope(deadline=self._close_deadline) as scope:
                self._read_scope = scope
                if self._stopped:
                    scope.cancel()
                while True:
                    if protocol.paused:
                        # The protocol stopped parsing: after max_queue messages, a
                        # batch of control frames, or before a protocol violation.
                        # Go on when recv() took every message (the application
                        # may answer them before the violation fails the connection).
                        if self._messages and self._close_deadline == math.inf:
                            resume = self._resume_reading = self._new_event()
                            await resume.wait()
                            continue
                        protocol.receive_data(b"", max_messages=self._room())
                        self._process_events()
                        self._flush_replies()
                        if protocol.state is State.CLOSED:
                            break
                        self._closing_started()
                        continue
                    max_queue = self.max_queue
                    if (
                        max_queue is not None
                        and self._messages >= max_queue
                        and self._close_deadline == math.inf
                    ):
                        # Backpressure: stop reading until recv() catches up.
                        resume = self._resume_reading = self._new_event()
                        await resume.wait()
                        continue
                    data: bytes | None = None
                    try:
                        data = await receive()
                    except anyio.EndOfStream:
                        pass
                    except TRANSPORT_ERRORS as exc:
                        self._record_transport_exc(exc)
                    if data is None:
                        protocol.receive_eof()
                    elif data:  # b"": _feed processed the bytes already
                        protocol.receive_data(
                            data, max_messages=self._room(), defer_failure=self._messages > 0
                        )
                    self._process_events()
                    self._flush_replies()
                    if protocol.state is State.CLOSED:
                        break
                    self._closing_started()
            self._read_scope = None
            if scope.cancelled_caught and not self._aborted and not self._stopped and self.debug:
                self.logger.debug("! timed out waiting for TCP close")
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        except BaseException as exc:  # pragma: no cover - a bug; never raise into the group
            self.logger.error("unexpected error in reader task", exc_info=exc)
            cancelled = True
        finally:
            if consuming:
                assert isinstance(self.transport, AsyncioStream)
                self.transport.set_consumer(None)
            with anyio.CancelScope(shield=True):
                await self._finish(cancelled)

    def _room(self) -> int | None:
        """How many more messages the protocol may parse now: the room left in the queue.

        At least one: while closing, the reader reads on whatever the queue holds.
        """
        max_queue = self.max_queue
        return None if max_queue is None else max(max_queue - self._messages, 1)

    def _flush_replies(self) -> None:
        """Flush what parsing made the protocol queue (pongs, the close echo).

        A peer that sends pings and never reads the pongs must not make us buffer
        them without limit: when more than ``write_limit`` bytes of replies wait
        for the writer, fail the connection with 1008 (policy violation: the
        peer's behaviour, not an error of ours, which 1011 would say).
        """
        output = self.protocol.data_to_send()
        if not output:
            return
        size = 0
        for chunk in output:
            size += len(chunk)
        # What waits for the writer is an upper bound of the replies still waiting.
        waiting = min(self._replies, self._out_size)
        self._flush(output)
        self._replies = min(waiting + size, self._out_size)
        if self._replies > self.write_limit and self.protocol.state is State.OPEN:
            if self.debug:
                self.logger.debug("! %d bytes of replies waiting to be written", self._replies)
            self._fail(1008, PING_FLOOD)

    def _process_events(self, events: list[Event] | None = None) -> None:
        """Queue data frames for recv() and resolve pings; other events are ignored."""
        queued = False
        frames = self._frames
        if events is None:
            events = self.protocol.events_received()
        for event in events:
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode < 8:
                frames.append(event)
                queued = True
                if event.fin:
                    self._messages += 1
            elif opcode is _PONG:
                self._resolve_pings(event.data)
        if queued:
            event_ = self._recv_event
            if event_ is not None:
                self._recv_event = None
                event_.set()

    def _resolve_pings(self, data: bytes) -> None:
        if data not in self._pings:
            return
        now = self._clock()
        keepalive = False
        # A pong acknowledges the ping it matches and every ping sent before it.
        for payload in list(self._pings):
            waiter, sent_at = self._pings.pop(payload)
            if waiter is not None:
                waiter._latency = now - sent_at
                waiter._event.set()
            keepalive = keepalive or payload == self._keepalive_payload
            if payload == data:
                self.latency = now - sent_at
                break
        if keepalive:
            self._keepalive_pong()

    async def _finish(self, cancelled: bool) -> None:
        """End of the reader: flush the last frames, close the transport, wake everyone."""
        protocol = self.protocol
        if protocol.state is not State.CLOSED:
            protocol.receive_eof()
            self._flush()
        if not cancelled:
            if self._aborted:
                # Best effort for the close frame: a few turns of the event loop.
                for _ in range(3):
                    if not self._out and not self._writing:
                        break
                    await anyio.lowlevel.checkpoint()
            else:
                # The writer gets what is left of the closing handshake's time:
                # nothing when the reader gave up waiting, close_timeout at most.
                deadline = self._close_deadline
                if deadline == math.inf and self.close_timeout is not None:
                    deadline = anyio.current_time() + self.close_timeout
                with anyio.CancelScope(deadline=deadline):
                    if self._writer_state == 1:
                        done = self._writer_done = anyio.Event()
                        await done.wait()
                    if isinstance(self.transport, AsyncioStream):
                        # What was written through may wait in the transport.
                        await self.transport.drain()
        self._cancel_writer()
        await close_forcefully(self.transport)
        if self.debug:
            self.logger.debug("= connection closed: %s", protocol.close_exc)
        self._is_closed = True
        if self._closed_event is not None:
            self._closed_event.set()
        for waiter, _ in self._pings.values():
            if waiter is not None:
                waiter._event.set()
        self._pings.clear()
        self._cancel_keepalive_timer()
        for event in (self._recv_event, self._resume_reading, self._drained, self._write_wanted):
            if event is not None:
                event.set()
        self._recv_event = self._drained = self._write_wanted = self._resume_reading = None

    def _cancel_writer(self) -> None:
        """Stop the writer, if it runs, or when it starts."""
        if self._writer_state == 1 and not self._writer_cancelled:
            self._writer_cancelled = True
            if self._writer_scope is not None:
                self._writer_scope.cancel()

    async def _run_writer(self) -> None:
        transport = self.transport
        # The scope's deadline is the one broadcast() sets (_send_broadcast).
        drain_scope = self._writer_scope = anyio.CancelScope(deadline=self._drain_deadline)
        if self._writer_cancelled:
            drain_scope.cancel()
        try:
            with drain_scope:
                while True:
                    output = self._out
                    if not output:
                        if self._is_closed:
                            return
                        wanted = self._write_wanted = self._new_event()
                        await wanted.wait()
                        continue
                    self._out = []
                    eof = output[-1] == SEND_EOF
                    data = output[0] if len(output) == 1 else b"".join(output)
                    self._writing = True
                    try:
                        if data:
                            await transport.send(data)
                        elif eof and self._write_now is not None:
                            # Bytes written directly may wait in the transport: the
                            # EOF goes after them, and closing mustn't drop them.
                            await transport.send(b"")
                        if eof:
                            await self._send_eof()
                    finally:
                        self._writing = False
                    self._out_size -= len(data)
                    del data  # don't hold the last frame while waiting for the next
                    if self._out_size <= self.write_limit:
                        drained = self._drained
                        if drained is not None:
                            self._drained = None
                            drained.set()
                        if self._drain_deadline != math.inf:
                            self._drain_deadline = drain_scope.deadline = math.inf
                    if eof:
                        return
            if drain_scope.cancelled_caught and not self._writer_cancelled:
                # A broadcast left more than write_limit bytes waiting, and they
                # didn't drain in time. The write was interrupted, maybe in the
                # middle of a frame: nothing more may be written, not even the
                # close frame, which the peer isn't reading anyway.
                if self.debug:
                    self.logger.debug("! %d bytes waiting to be written", self._out_size)
                self._fail(1013, SLOW_CONSUMER, abort=True)
                self._out = []
        except TRANSPORT_ERRORS as exc:
            self._record_transport_exc(exc)
            self._abort_soon()
        except BaseException as exc:  # pragma: no cover - a bug; never raise into the group
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            self.logger.error("unexpected error in writer task", exc_info=exc)
            self._abort_soon()
        finally:
            self._writer_state = 2
            if self._writer_done is not None:
                self._writer_done.set()
            drained = self._drained
            if drained is not None:
                self._drained = None
                drained.set()

    async def _run_keepalive(self) -> None:
        assert self.ping_interval is not None
        assert self._keepalive_scope is not None
        with self._keepalive_scope:
            while True:
                await anyio.sleep(self.ping_interval)
                if self.protocol.state is not State.OPEN:
                    return
                try:
                    waiter = await self.ping()
                except (ConnectionClosed, InvalidState, ProtocolError):
                    return
                if self.debug:
                    self.logger.debug("% sent keepalive ping")
                if self.ping_timeout is None:
                    continue
                with anyio.move_on_after(self.ping_timeout) as scope:
                    try:
                        await waiter
                    except ConnectionClosed:
                        return
                    if self.debug:
                        self.logger.debug("% received keepalive pong")
                if scope.cancelled_caught:
                    if self.debug:
                        self.logger.debug("- timed out waiting for keepalive pong")
                    if self.protocol.state is State.OPEN:
                        self._fail(1011, "keepalive ping timeout", abort=True)
                    return

    # The keepalive on anyws' asyncio transport: the same, driven by timers.
    # They run as callbacks of the event loop, outside any task: no anyio call.

    def _keepalive_ping(self) -> None:
        assert self._loop is not None
        assert self.ping_interval is not None
        self._keepalive_timer = None
        if self.protocol.state is not State.OPEN:
            return
        payload = os.urandom(4)
        while payload in self._pings:
            payload = os.urandom(4)
        self.protocol.send_ping(payload)
        self._pings[payload] = (None, self._clock())
        self._keepalive_payload = payload
        self._flush()
        if self.debug:
            self.logger.debug("% sent keepalive ping")
        if self.ping_timeout is None:
            self._keepalive_timer = self._loop.call_later(self.ping_interval, self._keepalive_ping)
        else:
            self._keepalive_timer = self._loop.call_later(
                self.ping_timeout, self._keepalive_timed_out
            )

    def _keepalive_pong(self) -> None:
        """The keepalive ping was answered: ping again ``ping_interval`` later."""
        assert self._loop is not None
        assert self.ping_interval is not None
        self._keepalive_payload = None
        if self.ping_timeout is None:
            return  # the next ping is due already
        self._cancel_keepalive_timer()
        if self.debug:
            self.logger.debug("% received keepalive pong")
        self._keepalive_timer = self._loop.call_later(self.ping_interval, self._keepalive_ping)

    def _keepalive_timed_out(self) -> None:
        self._keepalive_timer = None
        if self.debug:
            self.logger.debug("- timed out waiting for keepalive pong")
        if self.protocol.state is State.OPEN:
            self._fail(1011, "keepalive ping timeout", abort=True)

    def _cancel_keepalive_timer(self) -> None:
        timer = self._keepalive_timer
        if timer is not None:
            self._keepalive_timer = None
            timer.cancel()

    # Opening handshake, before the background tasks start --------------

    async def _send_eof(self) -> None:
        """Half-close the transport after the last frame; skipped once it has failed."""
        if self._transport_exc is not None:
            return
        transport = self.transport
        try:
            if isinstance(transport, TLSStream):
                # anyio's TLS streams can't half-close (send_eof raises
                # NotImplementedError, or TypeError once the peer ended the TLS
                # session): close instead, which sends close_notify.
                await transport.aclose()
            else:
                await transport.send_eof()
        except NotImplementedError:
            await transport.aclose()  # another stream that can't half-close
        except RuntimeError as exc:
            # uvloop raises this on a transport that a reset closed.
            raise anyio.BrokenResourceError from exc

    async def _write_direct(self) -> None:
        """Write the protocol's output from the current task (handshake only).

        Transport errors end the protocol (as an end of stream) rather than raise.
        """
        for chunk in self.protocol.data_to_send():
            try:
                if chunk == SEND_EOF:
                    await self._send_eof()
                else:
                    await self.transport.send(chunk)
            except TRANSPORT_ERRORS as exc:
                self._record_transport_exc(exc)
                self.protocol.receive_eof()
                self.protocol.data_to_send()
                return

    async def _receive_handshake_message(self) -> Request | Response | None:
        """Read until the protocol parses the handshake request or response.

        Frames that arrive in the same read are queued for `recv`. Returns
        ``None`` when the handshake failed or the stream ended first.
        """
        protocol = self.protocol
        while True:
            events = protocol.events_received()
            for index, event in enumerate(events):
                if not isinstance(event, Frame):
                    self._process_events(events[index + 1 :])
                    return event
            if protocol.handshake_exc is not None or protocol.state is State.CLOSED:
                return None
            try:
                data = await self._receive()
            except anyio.EndOfStream:
                protocol.receive_eof()
            except TRANSPORT_ERRORS as exc:
                self._record_transport_exc(exc)
                protocol.receive_eof()
            else:
                protocol.receive_data(data, max_messages=self._room())


class _MessageIterator:
    """``async for message in connection``: `Connection.recv` until a normal close.

    A class, not an async generator: trio warns about async generators left
    unfinished (``break`` out of the loop), and this has nothing to finalize.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __aiter__(self) -> _MessageIterator:
        return self

    async def __anext__(self) -> Data:
        try:
            return await self._connection.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None


class _FragmentIterator:
    """`Connection.recv_streaming`: the fragments of one message, decoded if asked."""

    __slots__ = ("_connection", "_decode", "_decoder", "_done")

    def __init__(self, connection: Connection, decode: bool | None) -> None:
        self._connection = connection
        self._decode = decode
        self._decoder: codecs.IncrementalDecoder | None = None
        self._done = False

    def __aiter__(self) -> _FragmentIterator:
        return self

    async def __anext__(self) -> Data:
        if self._done:
            raise StopAsyncIteration
        frame, text = await self._connection._next_fragment()
        self._done = frame.fin
        decode = self._decode
        if (text and decode is not False) or decode:
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            return self._decoder.decode(frame.data, frame.fin)
        return frame.data

    async def aclose(self) -> None:
        """Stop iterating; the rest of the message goes to the next receive."""
        self._done = True


class _Running:
    """Runs a connection's background tasks in a task group owned by this context.

    The body of the ``async with`` runs outside any exception group: the task
    group is entered and exited by hand, its children never raise, and the
    body's own exception is re-raised as it is. Like any task group, it must be
    entered and exited in the same task.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._task_group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Connection:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self.connection._start(task_group)
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        connection = self.connection
        task_group = self._task_group
        assert task_group is not None
        try:
            if exc is None:
                await connection.close()
            elif isinstance(exc, Exception):
                # An error in the body: close with 1011, like a server handler.
                await connection.close(1011)
            else:
                # Cancellation or KeyboardInterrupt: no time for a handshake.
                connection._abort_soon()
        except BaseException:
            connection._abort_soon()
            raise
        finally:
            connection._stop()
            await task_group.__aexit__(None, None, None)
