"""A WebSocket connection: what to send and what the bytes received mean.

Theory of operation
-------------------
A `Connection` joins a sans-I/O `Protocol` and an engine (`anyws._engine`) that
moves its bytes: the task engine for any anyio byte stream, the asyncio engine
(`anyws._asyncio_engine`) for anyws' own asyncio transport, which `connect` and
`serve` choose on asyncio for TCP. The engine is picked when the connection is
created; the connection never looks at its transport again. Beside it:

- its `Inbox` (`anyws._messages`) holds the messages received and not yet
  returned by `recv`, and stops the reader while ``max_queue`` of them wait;
- its `Pings` (`anyws._keepalive`) match pongs with pings and run the keepalive
  on the engine's timer;
- `anyws._handshake_io` runs the opening handshake's I/O before the engine's
  tasks start (`write_handshake`, `receive_handshake`).

The module ends with the connection's internal surface: the functions that the
rest of anyws (client, server, broadcast, `anyws.sync`) uses beyond the public
API, so that no module reaches into a connection's private members; `Running`
runs a connection's tasks for `connect`, `serve`, `reconnect` and
`anyws.testing`.

The engine's tasks run in a task group owned by the ``async with`` that opened
the connection (`connect` or `serve`), beside the tasks that the application
starts with `Connection.start_soon` (`anyws._tasks`), and call the connection
back through the methods that `~anyws._engine.Link` declares (``_received``,
``_reader_ended``, ``_too_slow``, ``_closed``...). Everything sent is queued
whole and synchronously, so cancelling `send` never leaves half a frame on the
wire.

Every wait is bounded once the connection is closing: when the closing handshake
starts (either side), the reader gets a deadline ``close_timeout`` away; when
it passes, the transport is aborted, the reader ends, and every waiter is woken.
A connection whose reader ended is CLOSED.

Background tasks never raise into the task group, so no `ExceptionGroup` reaches
a user: a transport error is recorded by the engine and becomes the
``__cause__`` of the `ConnectionClosed` that `recv` and `send` raise. Only
`KeyboardInterrupt` and `SystemExit` (and cancellation) go through, and
`exit_task_group` takes them out of the group that the task group wraps them in.
"""

from __future__ import annotations

import math
import sys
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import anyio
import anyio.abc
import anyio.lowlevel

from . import _handshake_io
from ._data import data_type_error
from ._engine import READ_SIZE, TRANSPORT_ERRORS, make_engine
from ._keepalive import Pings, PongWaiter
from ._logging import ConnectionLogger
from ._messages import Data, FragmentIterator, Inbox, MessageIterator
from ._objectstream import ObjectStreamFace
from ._tasks import TaskOwner, task_exception
from .exceptions import ConnectionClosed, InvalidState
from .sansio import Protocol, State
from .sansio.extensions import PerMessageDeflate


if TYPE_CHECKING:
    from .sansio import Request, Response

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]


__all__ = [
    "READ_SIZE",
    "TRANSPORT_ERRORS",
    "Connection",
    "Data",
    "DataLike",
    "Running",
    "closed_exc",
    "exit_task_group",
    "is_closed",
    "is_fragmenting",
    "queued_messages",
    "receive_handshake",
    "send_broadcast",
    "transport_error",
    "write_handshake",
]

DataLike = str | bytes | bytearray | memoryview

T = TypeVar("T")

#: The reason of the 1013 close of a connection that `broadcast` found too slow.
SLOW_CONSUMER = "slow consumer"

#: The reason of the 1008 close of a connection whose peer sends pings (or close
#: frames) faster than it reads the replies: more than ``write_limit`` bytes of them wait.
PING_FLOOD = "too many pings"


class _Setting(Generic[T]):
    """A setting of the connection that lives in the part that uses it.

    ``connection.max_queue`` reads and writes ``connection._inbox.max_queue``: one
    value, where the code that reads it on every message finds it.
    """

    def __init__(self, part: str, doc: str) -> None:
        self._part = part
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, connection: None, owner: type) -> _Setting[T]: ...
    @overload
    def __get__(self, connection: Connection, owner: type) -> T: ...

    def __get__(self, connection: Connection | None, owner: type) -> _Setting[T] | T:
        if connection is None:
            return self
        value: T = getattr(getattr(connection, self._part), self._name)
        return value

    def __set__(self, connection: Connection, value: T) -> None:
        setattr(getattr(connection, self._part), self._name, value)


class Connection(TaskOwner, ObjectStreamFace):
    """A WebSocket connection; the common base of client and server connections.

    Connections are created by `connect` and `serve`, never directly. Subclass
    `ClientConnection` or `ServerConnection` and pass a factory (for example
    ``functools.partial(MyConnection, extra=42)``) as ``create_connection`` to
    add behaviour.
    """

    # Slots: a connection's attributes take a few hundred bytes instead of a
    # dict's 1.5 KB; the __dict__ that anyio's stream classes bring keeps other
    # attributes possible (subclasses and tests add some), at no cost until one
    # is set.
    __slots__ = (
        "_closed_event",
        "_engine",
        "_fragmenting",
        "_inbox",
        "_pings",
        "_replies",
        "_send_lock",
        "debug",
        "id",
        "latency",
        "logger",
        "protocol",
        "request",
        "response",
        "transport",
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
        #: Unique identifier of the connection, for logs.
        self.id: uuid.UUID = uuid.uuid4()
        self.debug = protocol.debug
        if protocol.debug:
            # Frame logs on: each trace line names the connection (_logging.py).
            protocol.logger = ConnectionLogger(protocol.logger, self)
        #: The logger of the connection's protocol.
        self.logger = protocol.logger
        #: Round-trip time of the last keepalive ping, in seconds; 0 until one completes.
        self.latency: float = 0.0
        #: The opening handshake's request (set by the client or server).
        self.request: Request | None = None
        #: The opening handshake's response (set by the client or server).
        self.response: Response | None = None

        self._inbox = inbox = Inbox(max_queue, self)
        # An upper bound of the bytes of replies to the peer's control frames (pongs,
        # the close echo) that wait for the writer (see _flush_replies).
        self._replies = 0
        self._engine = engine = make_engine(
            stream,
            self,
            inbox,
            write_limit=write_limit,
            close_timeout=close_timeout,
        )
        inbox.new_event = engine.new_event
        self._pings = Pings(
            self,
            # Round trips are timed with perf_counter, not the engine's (the loop's)
            # clock: uvloop's ticks in milliseconds, and a loopback round trip would
            # read 0.0, which means "no pong yet" in `latency`.
            perf_counter,
            engine.timer,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        # Created when a send() must wait (backpressure, a fragmented message):
        # until then, send() queues whole frames, synchronously.
        self._send_lock: anyio.Lock | None = None
        self._fragmenting = False  # send() is sending a fragmented message
        # Created for those who wait for the end.
        self._closed_event: anyio.Event | None = None
        self._init_tasks()  # start_soon(), start(): see _tasks.py

    # Settings: each lives in the part that uses it (see _Setting).
    ping_interval = _Setting[float | None](
        "_pings", "Seconds between keepalive pings; ``None``: no keepalive."
    )
    ping_timeout = _Setting[float | None](
        "_pings", "Seconds to wait for a keepalive pong; ``None``: forever."
    )
    close_timeout = _Setting[float | None]("_engine", "Bound on the closing handshake, in seconds.")
    max_queue = _Setting[int | None](
        "_inbox", "Most incoming messages waiting for `recv` before reading stops."
    )
    write_limit = _Setting[int](
        "_engine", "`send` waits while more bytes than this wait to be written."
    )

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
        return await self._inbox.get(decode)

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
        return FragmentIterator(self._inbox, decode)

    # Not anyio's iteration (the stream itself, ending on EndOfStream): websockets'.
    def __aiter__(self) -> AsyncIterator[Data]:  # type: ignore[override]
        """Iterate on incoming messages; ends on a normal close, raises on an abnormal one.

        Leaving the loop early (``break``, an exception) loses nothing and leaves
        nothing to clean up: the next message waits for the next `recv`.
        """
        # A subclass's recv() is honoured; the inbox's, one call shorter, otherwise.
        recv = self._inbox.get if type(self).recv is Connection.recv else self.recv
        return MessageIterator(recv)

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
            TypeError: The message, or a fragment, has an unsupported type (a
                `dict`: "data is a dict-like object"), or fragments mix text and
                bytes.

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
                engine = self._engine
                if engine.out_size <= engine.write_limit:
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
        if isinstance(message, Iterable) and not isinstance(message, Mapping):
            iterator: Any = iter(message)
            aiter_ = None
        elif isinstance(message, AsyncIterable):
            aiter_ = aiter(message)
            iterator = None
        else:
            # A dict is iterable, but its keys aren't what was meant (json.dumps was).
            raise data_type_error(
                message, "str, bytes-like, or an iterable or async iterable of them"
            )
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
        self._start_closing(code, reason)
        await self._wait_closed()
        self._cancel_tasks()

    def _start_closing(self, code: int, reason: str) -> None:
        """Send a close frame, unless closing already; never waits."""
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

    async def aclose(self) -> None:
        """Close with code 1000: anyio's `~anyio.abc.AsyncResource` protocol."""
        await self.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed.

        Cancellation (a timeout, for example) stops the wait and nothing else.
        """
        await self._wait_closed()

    async def _wait_closed(self) -> None:
        if self._engine.is_closed:
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
        payload = self._pings.new_payload(
            None if data is None else data.encode() if isinstance(data, str) else bytes(data)
        )
        self._check_sendable()
        self.protocol.send_ping(payload)
        waiter = PongWaiter(self._closed_exc)
        self._pings.sent(payload, waiter)
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

    # Internals -------------------------------------------------------------

    def _closed_exc(self) -> ConnectionClosed:
        exc = self.protocol.close_exc
        cause = self._engine.transport_exc
        if cause is None:
            cause = self.protocol.parser_exc
        exc.__cause__ = cause
        return exc

    def _end_of_messages(self) -> ConnectionClosed:
        """A receiver found the connection closed and no message left.

        The receive loop is over: so are the connection's tasks (_tasks.py).
        """
        self._cancel_tasks()
        return self._closed_exc()

    def _check_sendable(self) -> None:
        if self.protocol.state is not State.OPEN:
            if self.protocol.state is State.CONNECTING:
                raise InvalidState("connection is connecting")
            raise self._closed_exc()

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
            # Only fragments get here: send() checked a whole message's type.
            raise TypeError(f"fragments must be str or bytes-like, not {type(data).__name__}")
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

    def _flush(self) -> None:
        """Hand the protocol's output to the engine; never waits."""
        output = self.protocol.data_to_send()
        if output:
            self._engine.write(output)

    def _flush_replies(self) -> None:
        """Flush what parsing made the protocol queue (pongs, the close echo), bounded.

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
        engine = self._engine
        # What waits for the writer is an upper bound of the replies still waiting.
        waiting = min(self._replies, engine.out_size)
        engine.write(output)
        self._replies = replies = min(waiting + size, engine.out_size)
        if replies > engine.write_limit and self.protocol.state is State.OPEN:
            if self.debug:
                self.logger.debug("! %d bytes of replies waiting to be written", replies)
            self._fail(1008, PING_FLOOD)

    async def _wait_drained(self) -> None:
        """Wait while more than ``write_limit`` bytes wait for the writer.

        Raises:
            ConnectionClosed: The connection closed before they were written.
        """
        if not await self._engine.wait_drained():
            raise self._closed_exc()

    def _closing_started(self) -> None:
        """Give the reader a deadline: the closing handshake must finish in time."""
        engine = self._engine
        if engine.close_deadline == math.inf and self.protocol.close_expected():
            timeout = engine.close_timeout
            engine.closing(engine.clock() + (math.inf if timeout is None else timeout))

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
            self._engine.abort_soon()
        else:
            self._closing_started()

    def _abort_soon(self) -> None:
        """Wake the reader at once; it ends the connection and aborts the transport."""
        self._engine.abort_soon()

    def _send_keepalive_ping(self, payload: bytes) -> bool:
        if self.protocol.state is not State.OPEN:
            return False
        self.protocol.send_ping(payload)
        self._flush()
        return True

    def _keepalive_timed_out(self) -> None:
        if self.protocol.state is State.OPEN:
            self._fail(1011, "keepalive ping timeout", abort=True)

    # The engine's link (anyws._engine.Link): called by the engine, inbox, pings ----

    def _received(self, data: bytes | None) -> bool:
        """Feed the protocol; queue messages, resolve pings, answer; return whether CLOSED.

        ``None`` is the end of the stream. (``b""`` is a wake-up of the asyncio
        engine's reader: nothing to feed.)
        """
        protocol = self.protocol
        inbox = self._inbox
        if data is None:
            protocol.receive_eof()
        elif data or protocol.paused:
            # No more messages than the queue has room for (the rest of the bytes
            # wait in the protocol, not inflated); and while messages wait for
            # recv(), a protocol violation waits for them (see Protocol.paused).
            protocol.receive_data(data, max_messages=inbox.room, defer_failure=inbox.messages > 0)
        pongs = inbox.put(protocol.events_received())
        if pongs is not None:
            for pong in pongs:
                latency = self._pings.received(pong)
                if latency is not None:
                    self.latency = latency
        self._flush_replies()
        if protocol.state is State.CLOSED:
            return True
        self._closing_started()
        return False

    def _reader_ended(self) -> None:
        """The engine's reader ended: the protocol sees the end of the stream."""
        protocol = self.protocol
        if protocol.state is not State.CLOSED:
            protocol.receive_eof()
            self._flush()

    def _too_slow(self) -> None:
        """A broadcast's bytes didn't drain in time: fail with 1013, aborting."""
        self._fail(1013, SLOW_CONSUMER, abort=True)

    def _closed(self) -> None:
        """The transport is closed: wake everyone who waits."""
        if self.debug:
            self.logger.debug("= connection closed: %s", self.protocol.close_exc)
        if self._closed_event is not None:
            self._closed_event.set()
        self._pings.close()
        self._inbox.close()

    # Running -----------------------------------------------------------------

    def _start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start the engine's tasks (reader, keepalive; writer when needed) in ``task_group``."""
        engine = self._engine
        engine.attach(task_group)
        self._task_group = task_group  # for start_soon() and start()
        # Frames that came with the handshake may have made the protocol answer
        # (a pong, the close echo, a failing close): hand that to the writer.
        self._flush()
        self._closing_started()
        engine.start(keepalive=self.ping_interval is not None)
        self._pings.start_keepalive()

    def _stop(self) -> None:
        """Cancel the background tasks (the connection is being torn down)."""
        self._cancel_tasks()
        self._engine.stop()


class Running:
    """Runs a connection's background tasks in a task group owned by this context.

    The body of the ``async with`` runs outside any exception group: the task
    group is entered and exited by hand, its children never raise, and the
    body's own exception is re-raised as it is. Like any task group, it must be
    entered and exited in the same task. The body runs in a cancel scope that a
    failing task of the connection's (`Connection.start_soon`) cancels; its
    exception then comes out of the ``async with`` instead. With
    ``cancel_body=False`` the body isn't this connection's to cancel (another
    connection's context is entered inside it): the exception comes out when
    the body ends.
    """

    def __init__(self, connection: Connection, *, cancel_body: bool = True) -> None:
        self.connection = connection
        self._task_group: anyio.abc.TaskGroup | None = None
        self._cancel_body = cancel_body

    async def __aenter__(self) -> Connection:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self.connection._start(task_group)
        if self._cancel_body:
            body_scope = self.connection._body_scope = anyio.CancelScope()
            body_scope.__enter__()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self.connection
        task_group = self._task_group
        assert task_group is not None
        body_scope = connection._body_scope
        if body_scope is not None and body_scope.__exit__(exc_type, exc, traceback):
            exc = None  # cancelled because a task failed: raise its exception below
        connection._body_scope = None
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
            await exit_task_group(task_group)
        task_exc = task_exception(connection)
        if task_exc is not None:
            if exc is None or isinstance(exc, ConnectionClosed):
                # The body ended, or saw the connection that the task closed: the
                # task's exception says why.
                raise task_exc
            connection.logger.error("connection task failed", exc_info=task_exc)


async def exit_task_group(task_group: anyio.abc.TaskGroup) -> None:
    """Exit ``task_group``, entered by hand, whose tasks raise no `Exception`.

    A `KeyboardInterrupt` or `SystemExit` raised in one of its tasks (the reader,
    say, when Ctrl-C lands there) comes out alone, not in the `BaseExceptionGroup`
    that the task group wraps it in: no exception group reaches a user.
    """
    try:
        await task_group.__aexit__(None, None, None)
    except BaseException as exc:
        interrupt = _interrupt_in(exc)
        if interrupt is None or interrupt is exc:
            raise
    else:
        return
    raise interrupt  # here, not in the except block: the group isn't its __context__


def _interrupt_in(exc: BaseException) -> BaseException | None:
    """The first `KeyboardInterrupt` or `SystemExit` in ``exc``, nested groups included."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _interrupt_in(inner)
            if found is not None:
                return found
    return None


# The connection's internal surface: what the rest of anyws (client, server,
# broadcast, anyws.sync) may use of a connection beyond its public API.


async def write_handshake(connection: Connection) -> None:
    """Write the protocol's output from the current task (the opening handshake).

    A transport error ends the protocol, as an end of stream would; see
    `transport_error`.
    """
    await _handshake_io.write_output(connection.protocol, connection._engine)


async def receive_handshake(connection: Connection) -> Request | Response | None:
    """Read until the protocol parses the handshake request or response.

    Frames that arrive with it are queued for `Connection.recv`. Returns ``None``
    when the handshake failed or the stream ended first.
    """
    return await _handshake_io.receive_message(
        connection.protocol, connection._engine, connection._inbox
    )


def transport_error(connection: Connection) -> BaseException | None:
    """The first error of the connection's transport, if any."""
    return connection._engine.transport_exc


def closed_exc(connection: Connection) -> ConnectionClosed:
    """The exception that `Connection.recv` raises once the connection is closed."""
    return connection._closed_exc()


def is_closed(connection: Connection) -> bool:
    """Whether the connection's reader ended and its transport is closed."""
    return connection._engine.is_closed


def queued_messages(connection: Connection) -> int:
    """How many whole messages wait for `Connection.recv`."""
    return connection._inbox.messages


def is_fragmenting(connection: Connection) -> bool:
    """Whether `Connection.send` is sending a fragmented message."""
    return connection._fragmenting


def send_broadcast(
    connection: Connection,
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
    with 1013.
    """
    engine = connection._engine
    if max_buffer is not None and engine.out_size > max_buffer:
        if connection.debug:
            connection.logger.debug("! %d bytes waiting to be written", engine.out_size)
        connection._fail(1013, SLOW_CONSUMER)
        return
    if frame is None:
        connection._send_frame(payload, text, fin=True, first=True, compress=False)
        engine.bound_drain(drain_timeout)
    else:
        connection._flush()  # Keep the protocol's output, if any, in order.
        engine.queue_broadcast(frame, drain_timeout)
        connection.protocol.messages_sent += 1  # it bypasses the protocol's send_*()
        connection.protocol.bytes_sent += len(frame)
