"""The engine seam: how a connection's bytes move, and the task engine.

A `Connection` decides what to send and what the bytes it receives mean; its
engine moves the bytes. `TaskEngine` is the engine for any anyio byte stream (trio,
TLS, Unix sockets, memory streams, anyio's TCP streams): it runs the connection's
I/O as tasks. `anyws._asyncio_engine.AsyncioEngine`, for anyws' own asyncio
transport, derives from it and replaces what that transport does better (writing
through, reading in the transport's callback, the event loop's timers).
`make_engine` picks one for a stream; the connection never looks at its
transport again.

An engine owns:

- the **reader** task: receives bytes and hands them to the connection
  (``Link.received``); stops reading while the connection's `Inbox` is full
  (backpressure), unless the connection is closing; ends when the connection is
  CLOSED, when the closing handshake's deadline passes (`closing_deadline`), or
  when the engine is aborted (`abort_soon`);
- the **writer** task, the only task that writes to the stream once the
  connection runs. Whatever the connection hands to `write` is appended to an
  output buffer as whole frames, and the writer writes the buffer in one call;
  frames queued while a write is in flight go out together. It starts with the
  first bytes it must write. When `queue_broadcast` leaves more than
  ``write_limit`` bytes waiting, the writer must get back under it by a deadline
  (on its own cancel scope) or the connection fails with 1013 (``Link.too_slow``);
- a `Timer` for the keepalive (a task of its own);
- the end: when the reader ends, the writer gets what is left of the closing
  handshake's time, the transport is closed, and the connection is told
  (``Link.closed``);
- the translation of transport errors: the first one is kept (`transport_exc`),
  to become the ``__cause__`` of `ConnectionClosed`.

Background tasks never raise into the task group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSStream

from ._asyncio import AsyncioStream, Waiter, close_forcefully
from .sansio import SEND_EOF


if TYPE_CHECKING:
    import uuid

    from ._keepalive import Timer
    from ._messages import Inbox
    from .exceptions import ConnectionClosed
    from .sansio import Protocol as SansioProtocol
    from .sansio._surface import LoggerLike


__all__ = ["READ_SIZE", "TRANSPORT_ERRORS", "Link", "TaskEngine", "TaskTimer", "make_engine"]

#: Errors that mean the transport broke underneath us; `ssl.SSLError` is an OSError.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)

#: How many bytes to ask a byte stream for at once: large reads, fewer wake-ups.
READ_SIZE = 2**18


class Link(Protocol):
    """What the engine, the inbox and the pings call on their connection.

    The connection itself: holding it costs a pointer, where bound methods would
    cost a connection's memory a few hundred bytes.
    """

    def _received(self, data: bytes | None) -> bool:
        """Bytes arrived (``None``: the end of the stream); return whether it's CLOSED."""
        ...

    def _reader_ended(self) -> None:
        """The reader ended: the stream is as good as closed."""
        ...

    def _too_slow(self) -> None:
        """What a broadcast queued didn't drain in time: fail with 1013, aborting."""
        ...

    def _closed(self) -> None:
        """The transport is closed: wake everyone who waits."""
        ...

    def _closed_exc(self) -> ConnectionClosed:
        """The exception that receivers and ping waiters get once it's closed."""
        ...

    def _end_of_messages(self) -> ConnectionClosed:
        """A receiver found it closed with no message left: the exception it gets."""
        ...

    def _send_keepalive_ping(self, payload: bytes) -> bool:
        """Send a keepalive ping if the connection is open; return whether it was."""
        ...

    def _keepalive_timed_out(self) -> None:
        """The keepalive's pong didn't come in time: fail with 1011, aborting."""
        ...

    #: The connection's logger, and whether debug lines are written.
    logger: LoggerLike
    debug: bool

    @property
    def protocol(self) -> SansioProtocol:
        """The connection's sans-I/O protocol."""
        ...

    @property
    def id(self) -> uuid.UUID:
        """The connection's identifier."""
        ...


def make_engine(
    stream: anyio.abc.AnyByteStream,
    link: Link,
    inbox: Inbox,
    *,
    write_limit: int,
    close_timeout: float | None,
) -> TaskEngine:
    """The engine for ``stream``: `AsyncioEngine` on anyws' asyncio transport, else tasks."""
    engine_class: type[TaskEngine] = TaskEngine
    if isinstance(stream, AsyncioStream):
        from ._asyncio_engine import AsyncioEngine

        engine_class = AsyncioEngine
    return engine_class(
        stream,
        link,
        inbox,
        write_limit=write_limit,
        close_timeout=close_timeout,
    )


class TaskTimer:
    """A `Timer` run by a task of its own, on anyio's clock.

    The task sleeps in a cancel scope whose deadline is the callback's; moving the
    deadline needs no wake-up.
    """

    __slots__ = ("_callback", "_deadline", "_scope", "_stopped")

    def __init__(self) -> None:
        self._callback: Callable[[], None] | None = None
        self._deadline = math.inf
        self._scope: anyio.CancelScope | None = None
        self._stopped = False

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._set_deadline(anyio.current_time() + delay)

    def cancel(self) -> None:
        self._callback = None
        self._set_deadline(math.inf)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    def stop(self) -> None:
        """End the task, or have it end as it starts."""
        self._stopped = True
        self._callback = None
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        """The task: call each callback when its time comes, until `stop`."""
        while not self._stopped:
            with anyio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await anyio.sleep_forever()
            self._scope = None
            callback = self._callback
            if self._stopped or callback is None or anyio.current_time() < self._deadline:
                continue  # stopped, cancelled or moved: the loop looks again
            self._callback = None
            self._deadline = math.inf
            callback()


class TaskEngine:
    """The engine for any anyio byte stream: a reader task, a writer task, a timer task.

    Args:
        stream: The byte stream, which the engine closes when the reader ends.
        link: The connection.
        inbox: The connection's incoming messages, for backpressure.
        write_limit: How many bytes may wait for the writer before `wait_drained` waits.
        close_timeout: Bound on the writer's last writes once the reader ended.
    """

    __slots__ = (
        "_drain_deadline",
        "_drained",
        "_link",
        "_read_scope",
        "_sized",
        "_stopped",
        "_task_group",
        "_write_wanted",
        "_writer_cancelled",
        "_writer_done",
        "_writer_scope",
        "_writer_state",
        "aborted",
        "clock",
        "close_deadline",
        "close_timeout",
        "inbox",
        "is_closed",
        "new_event",
        "out",
        "out_size",
        "timer",
        "transport",
        "transport_exc",
        "write_limit",
        "writing",
    )

    def __init__(
        self,
        stream: anyio.abc.AnyByteStream,
        link: Link,
        inbox: Inbox,
        *,
        write_limit: int,
        close_timeout: float | None,
    ) -> None:
        self.transport = stream
        self._link = link
        self.inbox = inbox
        self.write_limit = write_limit
        self.close_timeout = close_timeout
        self._sized = isinstance(stream, anyio.abc.ByteStream)
        #: The clock of timeouts and latencies.
        self.clock: Callable[[], float] = anyio.current_time
        #: Makes the one-shot events that recv(), send() and the tasks wait on.
        self.new_event: Callable[[], anyio.Event | Waiter] = anyio.Event
        #: The keepalive's timer.
        self.timer: Timer = self._new_timer()

        # Outgoing: bytes waiting for the writer.
        self.out: list[bytes] = []
        self.out_size = 0
        self.writing = False  # the writer is in the stream's send()
        self._write_wanted: anyio.Event | Waiter | None = None
        self._drained: anyio.Event | Waiter | None = None
        # The writer task starts when something is queued for it (_wake_writer).
        # 0: not started, 1: running, 2: done.
        self._writer_state = 0
        self._writer_done: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        # queue_broadcast() never waits: when it leaves more than write_limit bytes
        # waiting, the writer must get below it by this deadline (its scope's).
        self._drain_deadline = math.inf

        # Closing. The reader's and the writer's scopes exist while they run;
        # stop() cancels them (and those not started yet, as they start).
        self.close_deadline = math.inf
        self._read_scope: anyio.CancelScope | None = None
        self._writer_scope: anyio.CancelScope | None = None
        self._stopped = False
        self._writer_cancelled = False
        #: Set when the reader ended and the transport is closed.
        self.is_closed = False
        #: The first transport error, the cause of the connection's end.
        self.transport_exc: BaseException | None = None
        self.aborted = False

    async def receive(self) -> bytes:
        """Receive bytes from the stream (the handshake's reads, then the reader's).

        Raises:
            anyio.EndOfStream: The peer closed its side.
            anyio.BrokenResourceError, anyio.ClosedResourceError, OSError: The
                transport broke (`TRANSPORT_ERRORS`).
        """
        if self._sized:
            return await cast("anyio.abc.ByteStream", self.transport).receive(READ_SIZE)
        return await self.transport.receive()

    # Starting and stopping -------------------------------------------------

    def attach(self, task_group: anyio.abc.TaskGroup) -> None:
        """Run the background tasks in ``task_group``: from now on, `write` starts the writer."""
        self._task_group = task_group

    def start(self, *, keepalive: bool) -> None:
        """Start the reader, and the keepalive's timer if asked."""
        task_group = self._task_group
        assert task_group is not None, "attach() first"
        task_group.start_soon(self._run_reader, name=f"{self._name()} reader")
        if keepalive:
            self._start_timer(task_group)

    def _new_timer(self) -> Timer:
        return TaskTimer()

    def _name(self) -> str:
        """What the tasks' names start with, for debuggers."""
        link = self._link
        return f"anyws {link.protocol.side.name.lower()} {link.id}"

    def _start_timer(self, task_group: anyio.abc.TaskGroup) -> None:
        timer = self.timer
        assert isinstance(timer, TaskTimer)
        task_group.start_soon(timer.run, name=f"{self._name()} keepalive")

    def stop(self) -> None:
        """Cancel the background tasks (the connection is being torn down)."""
        # Only the scopes of tasks still running: anyio's cancel() costs a repr of
        # the current task.
        self._stopped = True
        if self._read_scope is not None:
            self._read_scope.cancel()
        self._cancel_writer()
        self._stop_timer()

    def _stop_timer(self) -> None:
        timer = self.timer
        assert isinstance(timer, TaskTimer)
        timer.stop()

    def closing(self, deadline: float) -> None:
        """The closing handshake started: the reader must end by ``deadline``."""
        if self.close_deadline == math.inf:
            self.close_deadline = deadline
            if self._read_scope is not None:
                self._read_scope.deadline = deadline
            # Read on while closing, so the peer's close frame gets through.
            self.inbox.resume()

    def abort_soon(self) -> None:
        """Wake the reader at once; it ends the connection and aborts the transport."""
        self.aborted = True
        self.close_deadline = -math.inf
        if self._read_scope is not None:
            self._read_scope.cancel()
        self.inbox.resume()

    def record_error(self, exc: BaseException) -> None:
        """Keep the first transport error, unless we aborted the transport ourselves."""
        if self.transport_exc is None and not self.aborted:
            # anyio wraps the OSError that broke the stream; the OSError says more.
            cause = exc.__cause__
            if isinstance(exc, anyio.BrokenResourceError) and isinstance(cause, OSError):
                exc = cause
            self.transport_exc = exc
            if self._link.debug:
                self._link.logger.debug("! transport error: %r", exc)

    # Writing ---------------------------------------------------------------

    def write(self, output: list[bytes]) -> None:
        """Hand the protocol's output (whole frames; `SEND_EOF` last) to the writer."""
        self.out.extend(output)
        for chunk in output:
            self.out_size += len(chunk)
        self._wake_writer()

    def queue_broadcast(self, frame: bytes, drain_timeout: float | None) -> None:
        """Queue ``frame`` for `broadcast`; bound the time it may take to drain."""
        self.out.append(frame)
        self.out_size += len(frame)
        self._wake_writer()
        self.bound_drain(drain_timeout)

    def bound_drain(self, drain_timeout: float | None) -> None:
        """Fail the connection if more than ``write_limit`` bytes wait ``drain_timeout``."""
        if self.out_size > self.write_limit and drain_timeout is not None:
            deadline = self.clock() + drain_timeout
            if deadline < self._drain_deadline:
                self._drain_deadline = deadline
                if self._writer_scope is not None:
                    self._writer_scope.deadline = deadline

    async def wait_drained(self) -> bool:
        """Wait while more than ``write_limit`` bytes wait for the writer.

        Returns ``False`` when the connection closed before they were written.
        """
        if self.out_size <= self.write_limit:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return True
        while self.out_size > self.write_limit:
            if self.is_closed:
                return False
            drained = self._drained
            if drained is None or _done(drained):
                # (A Waiter whose waiter was cancelled is cancelled: make another.)
                drained = self._drained = self.new_event()
            await drained.wait()
        return True

    async def write_direct(self, output: list[bytes]) -> bool:
        """Write ``output`` from the current task, before the tasks start (handshake).

        Returns ``False`` when the transport failed (the error is recorded).
        """
        for chunk in output:
            try:
                if chunk == SEND_EOF:
                    await self._send_eof()
                else:
                    await self.transport.send(chunk)
            except TRANSPORT_ERRORS as exc:
                self.record_error(exc)
                return False
        return True

    def _wake_writer(self) -> None:
        """Tell the writer that bytes wait; start it the first time."""
        if self._writer_state == 0:
            task_group = self._task_group
            if task_group is None or self.is_closed or self._stopped:
                return  # start() starts it; or too late: nothing is written anymore
            self._writer_state = 1
            task_group.start_soon(self._run_writer, name=f"{self._name()} writer")
            return
        wanted = self._write_wanted
        if wanted is not None:
            self._write_wanted = None
            wanted.set()

    def _cancel_writer(self) -> None:
        """Stop the writer, if it runs, or when it starts."""
        if self._writer_state == 1 and not self._writer_cancelled:
            self._writer_cancelled = True
            if self._writer_scope is not None:
                self._writer_scope.cancel()

    async def _send_eof(self) -> None:
        """Half-close the transport after the last frame; skipped once it has failed."""
        if self.transport_exc is not None:
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

    async def _send_data(self, data: bytes, eof: bool) -> None:
        """The writer's write: ``data``, then the EOF if ``eof``."""
        if data:
            await self.transport.send(data)
        if eof:
            await self._send_eof()

    async def _run_writer(self) -> None:
        # The scope's deadline is the one queue_broadcast() sets.
        drain_scope = self._writer_scope = anyio.CancelScope(deadline=self._drain_deadline)
        if self._writer_cancelled:
            drain_scope.cancel()
        try:
            with drain_scope:
                while True:
                    output = self.out
                    if not output:
                        if self.is_closed:
                            return
                        wanted = self._write_wanted = self.new_event()
                        await wanted.wait()
                        continue
                    self.out = []
                    eof = output[-1] == SEND_EOF
                    data = output[0] if len(output) == 1 else b"".join(output)
                    self.writing = True
                    try:
                        await self._send_data(data, eof)
                    finally:
                        self.writing = False
                    self.out_size -= len(data)
                    del data  # don't hold the last frame while waiting for the next
                    if self.out_size <= self.write_limit:
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
                if self._link.debug:
                    self._link.logger.debug("! %d bytes waiting to be written", self.out_size)
                self._link._too_slow()
                self.out = []
        except TRANSPORT_ERRORS as exc:
            self.record_error(exc)
            self.abort_soon()
        except anyio.EndOfStream:
            # anyio's TLS stream, once the peer ended the TLS session (close_notify):
            # nothing more can be written. The reader sees the end of the stream.
            self.abort_soon()
        except Exception as exc:  # pragma: no cover - a bug; never raise into the group
            self._link.logger.error("unexpected error in writer task", exc_info=exc)
            self.abort_soon()
        except BaseException as exc:
            # Cancellation goes through; so do KeyboardInterrupt and SystemExit, which
            # are the user's (exit_task_group takes them out of the exception group).
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self.abort_soon()
            raise
        finally:
            self._writer_state = 2
            if self._writer_done is not None:
                self._writer_done.set()
            drained = self._drained
            if drained is not None:
                self._drained = None
                drained.set()

    # Reading ---------------------------------------------------------------

    def _reading_starts(self) -> None:
        """The reader is about to read (a hook for `AsyncioEngine`)."""

    def _reading_ends(self) -> None:
        """The reader stopped reading (a hook for `AsyncioEngine`)."""

    async def _run_reader(self) -> None:
        received = self._link._received
        protocol = self._link.protocol
        inbox = self.inbox
        receive = self.receive
        cancelled = False
        self._reading_starts()
        try:
            # One scope for the whole loop, not one per read: its deadline is the
            # closing handshake's (set by closing()), and cancelling it
            # (abort_soon()) ends the connection.
            with anyio.CancelScope(deadline=self.close_deadline) as scope:
                self._read_scope = scope
                if self._stopped:
                    scope.cancel()
                while True:
                    if protocol.paused:
                        # The protocol stopped parsing with bytes left (see its
                        # paused): go on when recv() took every message, so that
                        # the application may answer them before a violation
                        # fails the connection; at once while closing.
                        if inbox.messages and self.close_deadline == math.inf:
                            await inbox.wait_for_room()
                        elif received(b""):
                            break
                        continue
                    if inbox.full and self.close_deadline == math.inf:
                        # Backpressure: stop reading until recv() catches up.
                        await inbox.wait_for_room()
                        continue
                    data: bytes | None = None
                    try:
                        data = await receive()
                    except anyio.EndOfStream:
                        pass
                    except TRANSPORT_ERRORS as exc:
                        self.record_error(exc)
                    if received(data):
                        break
            self._read_scope = None
            if (
                scope.cancelled_caught
                and not self.aborted
                and not self._stopped
                and self._link.debug
            ):
                self._link.logger.debug("! timed out waiting for TCP close")
        except Exception as exc:  # pragma: no cover - a bug; never raise into the group
            self._link.logger.error("unexpected error in reader task", exc_info=exc)
            cancelled = True
        except BaseException:
            # Cancellation, and KeyboardInterrupt or SystemExit, which are the user's
            # (exit_task_group takes them out of the task group's exception group).
            cancelled = True
            raise
        finally:
            self._reading_ends()
            with anyio.CancelScope(shield=True):
                await self._finish(cancelled)

    async def _drain_transport(self) -> None:
        """Wait for bytes written outside the writer (a hook for `AsyncioEngine`)."""

    async def _finish(self, cancelled: bool) -> None:
        """End of the reader: flush the last frames, close the transport, wake everyone."""
        self._link._reader_ended()
        if not cancelled:
            if self.aborted:
                # Best effort for the close frame: a few turns of the event loop.
                for _ in range(3):
                    if not self.out and not self.writing:
                        break
                    await anyio.lowlevel.checkpoint()
            else:
                # The writer gets what is left of the closing handshake's time:
                # nothing when the reader gave up waiting, close_timeout at most.
                deadline = self.close_deadline
                if deadline == math.inf and self.close_timeout is not None:
                    deadline = anyio.current_time() + self.close_timeout
                with anyio.CancelScope(deadline=deadline):
                    if self._writer_state == 1:
                        done = self._writer_done = anyio.Event()
                        await done.wait()
                    await self._drain_transport()
        self._cancel_writer()
        await close_forcefully(self.transport)
        self.is_closed = True
        self._stop_timer()
        self._link._closed()
        for event in (self._drained, self._write_wanted):
            if event is not None:
                event.set()
        self._drained = self._write_wanted = None


def _done(event: anyio.Event | Waiter) -> bool:
    """Whether a `Waiter` is done (cancelled); an `anyio.Event` is reused until set."""
    return isinstance(event, Waiter) and event.done()
