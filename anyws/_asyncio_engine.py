"""The asyncio engine: a connection's I/O on anyws' asyncio transport (`AsyncioStream`).

`AsyncioEngine` is the `TaskEngine` with three shortcuts that spare a turn of the
event loop per message, with the same guarantees:

- **reading in the transport's callback**: while the reader task waits with
  nothing buffered, the bytes that arrive are handed to the connection in the
  transport's callback (`AsyncioStream.set_consumer`), so the messages reach
  `recv` without a hop through the reader task;
- **writing through**: a frame is written from the task that queues it when
  nothing waits for the writer and no burst is under way
  (`AsyncioStream.try_write`); frames are still written whole, without waiting;
- **the event loop's timers** for the keepalive, instead of a task.

Its clock is the event loop's (anyio's on asyncio) and its events are futures
(`Waiter`), cheaper than `anyio.Event`. Code that runs in the transport's
callbacks or the loop's timers calls nothing that needs anyio to know the
running event loop: under ``asyncio.run()`` it may not, outside a task.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._asyncio import AsyncioStream
from ._engine import Link, TaskEngine
from .sansio import SEND_EOF


if TYPE_CHECKING:
    import anyio.abc

    from ._keepalive import Timer
    from ._messages import Inbox


__all__ = ["AsyncioEngine", "LoopTimer"]


class LoopTimer:
    """A `Timer` on the event loop's ``call_later``."""

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.cancel()
        self._handle = self._loop.call_later(delay, callback)

    def cancel(self) -> None:
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()


class AsyncioEngine(TaskEngine):
    """The engine for an `AsyncioStream`; see the module's docstring."""

    __slots__ = ("_stream", "_try_write")

    transport: AsyncioStream

    def __init__(
        self,
        stream: AsyncioStream,
        link: Link,
        inbox: Inbox,
        *,
        write_limit: int,
        close_timeout: float | None,
    ) -> None:
        self._stream = stream
        super().__init__(
            stream,
            link,
            inbox,
            write_limit=write_limit,
            close_timeout=close_timeout,
        )
        self._try_write = stream.try_write
        # Readable in the transport's callbacks, outside any task, where anyio may
        # not know which event loop runs.
        self.clock = stream.loop.time
        self.new_event = stream.new_waiter

    def _new_timer(self) -> Timer:
        return LoopTimer(self._stream.loop)

    def write(self, output: list[bytes]) -> None:
        # Nothing waits for the writer: write from this task, and spare the hop to
        # the writer's. The stream refuses when it's busy, or in a burst (see
        # AsyncioStream.try_write): better left to the writer, in one write.
        # The EOF goes through a running writer, which then ends.
        # More than write_limit goes through the writer, so that send() waits for it.
        if not self.out:
            eof = output[-1] == SEND_EOF
            data = output[0] if len(output) == 1 else b"".join(output)
            if (
                (not eof or self._writer_state != 1)
                and len(data) <= self.write_limit
                and self._try_write(data, eof=eof and self.transport_exc is None)
            ):
                return
            output = [data, SEND_EOF] if eof and data else [data]
        super().write(output)

    def queue_broadcast(self, frame: bytes, drain_timeout: float | None) -> None:
        # As websockets' broadcast does: write at once, one system call per
        # connection, rather than wake each connection's writer task (a task switch
        # per connection per message). When anything waits, or the transport is
        # busy, the frame queues behind it as usual, bounded as usual.
        if (
            not self.out
            and len(frame) <= self.write_limit
            and self._stream.try_write(frame, in_burst=True)
        ):
            return
        super().queue_broadcast(frame, drain_timeout)

    async def _send_data(self, data: bytes, eof: bool) -> None:
        if data:
            await self._stream.send(data)
        elif eof:
            # Bytes written through may wait in the transport: the EOF goes after
            # them, and closing mustn't drop them.
            await self._stream.send(b"")
        if eof:
            await self._send_eof()

    def _start_timer(self, task_group: anyio.abc.TaskGroup) -> None:
        pass  # the event loop runs the timer

    def _stop_timer(self) -> None:
        self.timer.cancel()

    def _reading_starts(self) -> None:
        self._stream.set_consumer(self._feed)

    def _reading_ends(self) -> None:
        self._stream.set_consumer(None)

    def _feed(self, data: bytes) -> bool:
        """The reader's work on ``data``, done in the transport's callback.

        Called while the reader task waits in ``receive()`` with nothing buffered:
        the messages reach `recv` without a hop through the reader task. Returns
        ``False``, leaving the bytes to the reader, when the reader must stop
        reading (backpressure); wakes the reader when the connection is closed.
        """
        inbox = self.inbox
        protocol = self._link.protocol
        if protocol.paused or (inbox.full and self.close_deadline == math.inf):
            return False
        if self._link._received(data) or inbox.full or protocol.paused:
            # Closed: the reader ends. Or the queue just filled: wake the reader so
            # that it stops reading now, as it does after a read of its own, rather
            # than take (and answer the pings of) the next bytes that arrive.
            self._stream.interrupt_receive()
        return True

    async def _drain_transport(self) -> None:
        # What was written through may wait in the transport.
        await self._stream.drain()
