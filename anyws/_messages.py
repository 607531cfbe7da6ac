"""Incoming messages: what a connection received and `recv` hasn't returned yet.

`Inbox` owns the queue of data frames between the connection's reader and
`Connection.recv` / `Connection.recv_streaming`: the frames themselves, how many
whole messages they hold, the one receiver allowed at a time, and backpressure
(the reader stops reading while ``max_queue`` messages wait, and resumes when the
receiver catches up or the connection starts closing). Text is decoded once, when
a message is returned, or incrementally for `recv_streaming`.

The inbox never does I/O and knows nothing of the engine: the connection feeds it
the protocol's events (`Inbox.put`) and tells it when it ended (`Inbox.close`).
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from .exceptions import ConcurrencyError, ConnectionClosedOK
from .sansio import Frame, Opcode


if TYPE_CHECKING:
    from ._asyncio import Waiter
    from ._engine import Link
    from .sansio import Event


__all__ = ["Data", "FragmentIterator", "Inbox", "MessageIterator"]

Data = str | bytes

_TEXT, _CONT, _PONG = Opcode.TEXT, Opcode.CONT, Opcode.PONG


class Inbox:
    """The data frames received and not yet returned, with backpressure.

    Args:
        max_queue: How many whole messages may wait before the reader stops
            reading; ``None``: no limit.
        link: The connection: its ``_closed_exc()`` is what a receiver gets once
            the inbox is closed and empty.
    """

    __slots__ = (
        "_closed",
        "_frames",
        "_link",
        "_recv_event",
        "_resume",
        "_streaming_text",
        "busy",
        "max_queue",
        "messages",
        "new_event",
    )

    def __init__(
        self,
        max_queue: int | None,
        link: Link,
    ) -> None:
        self.max_queue = max_queue
        self._link = link
        #: Makes the one-shot events that the receiver and the reader wait on: the
        #: engine's (`anyio.Event`, or a cheaper future on asyncio).
        self.new_event: Callable[[], anyio.Event | Waiter] = anyio.Event
        #: The queued frames; ``None`` while there are none: an idle connection
        #: doesn't keep a deque (760 bytes) for nothing.
        self._frames: deque[Frame] | None = None
        #: How many whole messages the queued frames hold.
        self.messages = 0
        #: A receiver is in `get` or `next_fragment` (only one at a time).
        self.busy = False
        self._recv_event: anyio.Event | Waiter | None = None
        self._resume: anyio.Event | Waiter | None = None
        self._streaming_text = False
        self._closed = False

    # The reader's side ----------------------------------------------------

    def put(self, events: Iterable[Event]) -> list[bytes] | None:
        """Queue the data frames among ``events``; return the payloads of pongs, if any."""
        queued = False
        pongs: list[bytes] | None = None
        frames = self._frames
        for event in events:
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode < 8:
                if frames is None:
                    frames = self._frames = deque()
                frames.append(event)
                queued = True
                if event.fin:
                    self.messages += 1
            elif opcode is _PONG:
                if pongs is None:
                    pongs = []
                pongs.append(event.data)
        if queued:
            waiter = self._recv_event
            if waiter is not None:
                self._recv_event = None
                waiter.set()
        return pongs

    @property
    def room(self) -> int | None:
        """How many more messages the reader may parse now (at least one, for closing)."""
        max_queue = self.max_queue
        return None if max_queue is None else max(max_queue - self.messages, 1)

    @property
    def full(self) -> bool:
        """Whether ``max_queue`` messages wait: the reader should stop reading."""
        max_queue = self.max_queue
        return max_queue is not None and self.messages >= max_queue

    @property
    def paused(self) -> bool:
        """Whether the reader waits in `wait_for_room`."""
        return self._resume is not None

    async def wait_for_room(self) -> None:
        """Wait until the receiver takes a message, or `resume` is called."""
        resume = self._resume = self.new_event()
        await resume.wait()

    def resume(self) -> None:
        """Wake the reader waiting in `wait_for_room` (the connection is closing)."""
        resume = self._resume
        if resume is not None:
            self._resume = None
            resume.set()

    def close(self) -> None:
        """No more frames will come: wake everyone; receivers drain what's left, then raise."""
        self._closed = True
        self.resume()
        waiter = self._recv_event
        if waiter is not None:
            self._recv_event = None
            waiter.set()

    # The receiver's side --------------------------------------------------

    async def get(self, decode: bool | None) -> Data:
        """Return the next message; see `Connection.recv`."""
        if self.busy:
            raise ConcurrencyError(
                "cannot call recv while another task is already running recv or recv_streaming"
            )
        self.busy = True
        try:
            if self.messages == 0:
                await self._wait(whole_message=True)
            else:
                await anyio.lowlevel.checkpoint_if_cancelled()
            frames = self._frames
            assert frames is not None
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
            if not frames:
                self._frames = None
            self.messages -= 1
            self._streaming_text = False
            self._consumed()
        finally:
            self.busy = False
        if decode is None:
            decode = text
        return data.decode() if decode else data

    async def next_fragment(self) -> tuple[Frame, bool]:
        """Take the next frame of the message being received, and whether it's text."""
        # Busy while waiting and taking a frame, not between fragments: a caller
        # that stops iterating leaves the rest of the message for the next recv()
        # or recv_streaming().
        if self.busy:
            raise ConcurrencyError(
                "cannot call recv_streaming while another task is already running "
                "recv or recv_streaming"
            )
        self.busy = True
        try:
            if not self._frames:
                await self._wait(whole_message=False)
            else:
                await anyio.lowlevel.checkpoint_if_cancelled()
            frames = self._frames
            assert frames is not None
            frame = frames.popleft()
            if not frames:
                self._frames = None
            if frame.opcode is not _CONT:
                self._streaming_text = frame.opcode is _TEXT
            text = self._streaming_text
            if frame.fin:
                self.messages -= 1
                self._streaming_text = False
                self._consumed()
        finally:
            self.busy = False
        return frame, text

    async def _wait(self, *, whole_message: bool) -> None:
        while (self.messages == 0) if whole_message else (not self._frames):
            if self._closed:
                raise self._link._end_of_messages()
            waiter = self._recv_event = self.new_event()
            await waiter.wait()

    def _consumed(self) -> None:
        if self._resume is not None and not self.full:
            self.resume()


class MessageIterator:
    """``async for message in connection``: ``recv`` until a normal close.

    A class, not an async generator: trio warns about async generators left
    unfinished (``break`` out of the loop), and this has nothing to finalize.
    """

    __slots__ = ("_recv",)

    def __init__(self, recv: Callable[[bool | None], Awaitable[Data]]) -> None:
        self._recv = recv

    def __aiter__(self) -> MessageIterator:
        return self

    async def __anext__(self) -> Data:
        try:
            return await self._recv(None)
        except ConnectionClosedOK:
            raise StopAsyncIteration from None


class FragmentIterator:
    """`Connection.recv_streaming`: the fragments of one message, decoded if asked."""

    __slots__ = ("_decode", "_decoder", "_done", "_inbox")

    def __init__(self, inbox: Inbox, decode: bool | None) -> None:
        self._inbox = inbox
        self._decode = decode
        self._decoder: codecs.IncrementalDecoder | None = None
        self._done = False

    def __aiter__(self) -> AsyncIterator[Data]:
        return self

    async def __anext__(self) -> Data:
        if self._done:
            raise StopAsyncIteration
        frame, text = await self._inbox.next_fragment()
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
