"""In-memory byte streams for tests: an unbounded pair with fault controls, and a lockstep pair.

Theory of operation
-------------------
A connection is two `_Pipe` objects, one per direction. A pipe holds what one stream has
sent and its peer hasn't received yet, in two parts:

- ``buffer``: delivered bytes, which the reader's ``receive()`` takes from the front;
- ``held``: bytes sent while the pipe is paused, moved to ``buffer`` on resume.

EOF follows the same route: ``send_eof()`` or ``aclose()`` sets ``eof_pending``, which
becomes ``eof_delivered`` once nothing holds it back (pause or ``delay_eof``). The reader
raises `anyio.EndOfStream` when ``buffer`` is empty and ``eof_delivered`` is set. Each
flag only ever goes one way (pending to delivered), so a pause that starts after the EOF
was delivered can't take it back.

Every blocked operation waits on the pipe's single `anyio.Event`, which `_Pipe.notify`
sets and forgets whenever anything changes. Waiters re-check their condition after each
wake-up (level-triggered), so a spurious wake-up is harmless. Nothing is ever consumed
across an ``await``: ``receive()`` takes bytes synchronously, after its last wait, so a
cancelled ``receive()`` never loses data.

The two kinds of pair differ only in ``send()``. On a memory pair it puts the bytes in the
pipe and returns. On a lockstep pair it then waits until the reader has taken all of
them; the pipe holds at most the bytes of that one pending ``send()`` (the send guard
allows a single sender), which is what makes withdrawing the rest of a cancelled
``send()`` well-defined.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from typing import Any, final

import anyio
from anyio.abc import ByteStream
from anyio.lowlevel import checkpoint


def _connection_reset() -> ConnectionResetError:
    """A fresh cause for each raise, so that tracebacks don't pile up on a shared instance."""
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))


class _Pipe:
    """One direction of a connection: what one stream sends and the other receives."""

    __slots__ = (
        "_event",
        "buffer",
        "delay_eof",
        "eof_delivered",
        "eof_pending",
        "held",
        "lockstep",
        "paused",
        "reader_closed",
        "received",
        "reset",
        "swallow",
        "trickle",
    )

    def __init__(self, *, lockstep: bool) -> None:
        self.lockstep = lockstep
        self.buffer = bytearray()
        self.held = bytearray()
        # Total of bytes that receive() returned: a lockstep send() waits for it to reach
        # its goal, and then it has succeeded whatever happens next.
        self.received = 0
        self.eof_pending = False
        self.eof_delivered = False
        self.reader_closed = False
        self.reset = False
        # The fault controls, set through the sending MemoryByteStream.
        self.swallow = False
        self.paused = False
        self.delay_eof = False
        self.trickle: int | None = None
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self) -> None:
        # Created on first use, so that a pair can be built outside of an event loop.
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    @property
    def unreceived(self) -> int:
        return len(self.buffer) + len(self.held)

    def put(self, data: bytes) -> None:
        # send() has dealt with swallow already.
        if self.paused:
            self.held += data
        else:
            self.buffer += data
            self.notify()

    def put_eof(self) -> None:
        if not (self.eof_pending or self.eof_delivered):
            self.eof_pending = True
            self.flush()

    def flush(self) -> None:
        """Deliver what pause and delay_eof no longer hold back."""
        if self.paused:
            return
        if self.held:
            self.buffer += self.held
            del self.held[:]
        if self.eof_pending and not self.delay_eof:
            self.eof_pending = False
            self.eof_delivered = True
        self.notify()

    def take(self, max_bytes: int) -> bytes:
        if self.trickle is not None:
            max_bytes = min(max_bytes, self.trickle)
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        self.received += len(data)
        self.notify()
        return data

    def discard(self) -> None:
        """Drop every byte not received yet (not the EOF: it still follows the bytes sent)."""
        del self.buffer[:]
        del self.held[:]
        self.notify()


@final
class MemoryByteStream(ByteStream):
    """One end of an in-memory connection made by `memory_stream_pair` or `lockstep_stream_pair`.

    Don't instantiate it: the constructor's arguments are private. It implements
    `anyio.abc.ByteStream`, so it goes wherever an `anyio.abc.AnyByteStream` does (the
    anyws connections, `anyio.streams.tls.TLSStream.wrap`,
    `anyio.streams.buffered.BufferedByteReceiveStream`...), and behaves like a TCP socket
    stream of anyio:

    - `receive` returns up to ``max_bytes`` of what has arrived, waits while nothing
      has, and raises `anyio.EndOfStream` once the peer's EOF (`send_eof` or
      `aclose`) is reached, after every byte sent before it;
    - after `aclose`, every operation raises `anyio.ClosedResourceError`, and the
      peer's `send` raises `anyio.BrokenResourceError`;
    - two tasks in `receive` (or in `send`/`send_eof`) at once raise
      `anyio.BusyResourceError` in the second one;
    - every async method is a checkpoint; an operation that is cancelled has no effect,
      except as each method documents.

    Fault controls make the connection misbehave on purpose. Each acts on the bytes that
    *this* stream sends, and may be changed at any time, also while operations are
    pending and after either stream is closed:

    - `swallow`: drop the bytes sent (a black-holed peer);
    - `paused`: hold the bytes sent back, until resumed (a peer that stops reading);
    - `trickle`: let the peer receive them at most N at a time (incremental parsing);
    - `delay_eof`: hold the EOF back, but not the bytes;
    - `reset`: break the connection in both directions (a TCP reset).

    They compose: for example, ``swallow`` plus ``delay_eof`` hides everything this stream
    sends, EOF included.
    """

    def __init__(self, outgoing: _Pipe, incoming: _Pipe) -> None:
        self._outgoing = outgoing
        self._incoming = incoming
        self._closed = False
        self._eof_sent = False
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")

    # ------------------------------------------------------------------ fault controls

    @property
    def swallow(self) -> bool:
        """Whether the bytes this stream sends are silently dropped. Defaults to False.

        `send` still succeeds (at once, even on a lockstep pair), but the peer never
        receives the bytes, as if the network or the peer had black-holed them, which
        is how a test trips a keepalive or close timeout. Only bytes sent while it is
        set are dropped. The EOF is not: to hide it too, set `delay_eof`.

        Example::

            client, server = memory_stream_pair()
            server.swallow = True
            await server.send(b"pong")  # lost
            server.swallow = False
            await server.send(b"late")
            assert await client.receive() == b"late"
        """
        return self._outgoing.swallow

    @swallow.setter
    def swallow(self, value: bool) -> None:
        self._outgoing.swallow = value

    @property
    def paused(self) -> bool:
        """Whether delivery of what this stream sends is paused. Defaults to False.

        While paused, the bytes and the EOF that this stream sends are held back: the
        peer's `receive` waits as if nothing had been sent, which is how the peer looks
        when it stops reading. On a memory pair `send` still returns at once (the
        buffer is unbounded); on a lockstep pair it waits, so pausing shows write
        backpressure. Setting it back to False delivers everything held, in order, and
        wakes the peer. What was delivered before the pause stays receivable.

        Example::

            client, server = memory_stream_pair()
            client.paused = True  # the server stops reading
            await client.send(b"hello")
            with anyio.move_on_after(0.1) as scope:
                await server.receive()
            assert scope.cancelled_caught  # the receive() waited
            client.paused = False
            assert await server.receive() == b"hello"
        """
        return self._outgoing.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._outgoing.paused = value
        self._outgoing.flush()

    @property
    def trickle(self) -> int | None:
        """The most bytes that one `receive` of the peer returns, or None for no limit.

        Defaults to None. It caps ``max_bytes`` of the peer's `receive`, so the bytes
        this stream sends arrive in chunks of at most that size, whatever the sizes of
        the sends, to exercise incremental parsing. It applies to bytes already in
        flight too.

        Raises:
            ValueError: if set to an integer below 1.

        Example::

            client, server = memory_stream_pair()
            client.trickle = 1
            await client.send(b"GET")
            assert await server.receive() == b"G"
            assert await server.receive() == b"E"
        """
        return self._outgoing.trickle

    @trickle.setter
    def trickle(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError("trickle must be None or a positive integer")
        self._outgoing.trickle = value

    @property
    def delay_eof(self) -> bool:
        """Whether the EOF this stream sends is held back. Defaults to False.

        While set, bytes keep flowing, but the EOF of `send_eof` or `aclose` doesn't
        reach the peer: once it has received everything, its `receive` waits instead of
        raising `anyio.EndOfStream`. Setting it back to False delivers a held EOF and
        wakes the peer. An EOF already delivered is not taken back. (The peer's sends
        after this stream's `aclose` still raise `anyio.BrokenResourceError`: only the
        EOF is delayed.)

        Example::

            client, server = memory_stream_pair()
            client.delay_eof = True
            await client.send(b"bye")
            await client.send_eof()
            assert await server.receive() == b"bye"
            with anyio.move_on_after(0.1) as scope:
                await server.receive()
            assert scope.cancelled_caught  # the receive() waited for the EOF
            client.delay_eof = False
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
        """
        return self._outgoing.delay_eof

    @delay_eof.setter
    def delay_eof(self, value: bool) -> None:
        self._outgoing.delay_eof = value
        self._outgoing.flush()

    def reset(self) -> None:
        """Reset the connection, as a TCP reset (RST) does; it can't be undone.

        Both directions break, whichever stream you call it on: every byte in flight is
        dropped, and on both streams pending and later calls to `receive`, `send` and
        `send_eof` raise `anyio.BrokenResourceError`, chained from a
        `ConnectionResetError`. `aclose` still works; after it, a stream raises
        `anyio.ClosedResourceError` as usual.

        Example::

            client, server = memory_stream_pair()
            server.reset()
            with pytest.raises(anyio.BrokenResourceError) as exc_info:
                await client.receive()
            assert isinstance(exc_info.value.__cause__, ConnectionResetError)
        """
        for pipe in (self._outgoing, self._incoming):
            pipe.reset = True
            pipe.discard()

    # ------------------------------------------------------------------ ByteStream

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """None; an in-memory stream has no socket, address or TLS session."""
        return {}

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` of what the peer has sent, waiting if nothing has.

        Bytes from several sends may come back together, and one send may come back in
        several parts (see `trickle`).

        Args:
            max_bytes: The most bytes to return, at least 1.

        Returns:
            Between 1 and ``max_bytes`` bytes.

        Raises:
            anyio.EndOfStream: if the peer sent EOF (`send_eof` or `aclose`) and every
                byte before it has been received.
            anyio.ClosedResourceError: if this stream was closed, also while waiting.
            anyio.BrokenResourceError: if the connection was `reset` (the cause is a
                `ConnectionResetError`).
            anyio.BusyResourceError: if another task is already receiving.
            ValueError: if ``max_bytes`` is below 1.

        If it is cancelled, no byte is consumed: what was about to be returned stays for
        the next call. (On asyncio, a receive woken by new data can still end with the
        cancellation, which loses nothing either.)
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            await checkpoint()
            pipe = self._incoming
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                if pipe.reset:
                    raise anyio.BrokenResourceError from _connection_reset()
                if pipe.buffer:
                    return pipe.take(max_bytes)
                if pipe.eof_delivered:
                    raise anyio.EndOfStream
                await pipe.wait()

    async def send(self, item: bytes) -> None:
        """Send bytes to the peer.

        On a memory pair this never blocks: the bytes go into the peer's unbounded
        buffer, and `send` returns after a checkpoint. On a lockstep pair it returns only
        once the peer's `receive` calls have returned every one of these bytes. Sending
        ``b""`` does nothing but checkpoint.

        Args:
            item: The bytes to send; any bytes-like object, copied before returning.

        Raises:
            anyio.ClosedResourceError: if this stream was closed or has sent EOF, also
                while waiting (a lockstep send then delivers no more of its bytes).
            anyio.BrokenResourceError: if the peer closed its end (also while waiting),
                or if the connection was `reset` (chained from a
                `ConnectionResetError`).
            anyio.BusyResourceError: if another task is already sending.

        Cancellation: on a memory pair a cancelled `send` has sent nothing. On a lockstep
        pair the peer keeps exactly the bytes that its `receive` calls returned before the
        cancellation was delivered, a prefix of ``item`` (possibly empty, possibly all of
        it); the rest is withdrawn and never delivered. The stream remains usable: the
        next send's bytes follow that prefix. So a send cancelled before the peer
        received anything leaves no trace.
        """
        with self._send_guard:
            await checkpoint()
            self._check_can_send()
            pipe = self._outgoing
            if pipe.swallow or not item:
                return
            goal = pipe.received + pipe.unreceived + len(item)
            pipe.put(item)
            if not pipe.lockstep:
                return
            try:
                while pipe.received < goal:
                    await pipe.wait()
                    if pipe.received < goal:
                        self._check_can_send()
            except BaseException:
                # Cancelled (or closed, broken, reset: then the pipe is empty already).
                # Withdraw the rest: the pipe holds the bytes of this send only, since a
                # lockstep send never returns while any of its bytes are left.
                pipe.discard()
                raise

    async def send_eof(self) -> None:
        """Send EOF: the peer's `receive` raises `anyio.EndOfStream` after the bytes sent.

        This stream can still receive (a half-close). Calling it again does nothing but
        checkpoint; it succeeds even if the peer has closed its end. `send` raises
        `anyio.ClosedResourceError` from now on.

        Raises:
            anyio.ClosedResourceError: if this stream was closed.
            anyio.BrokenResourceError: if the connection was `reset`.
            anyio.BusyResourceError: if another task is sending.

        If it is cancelled, no EOF is sent.
        """
        with self._send_guard:
            await checkpoint()
            if self._closed:
                raise anyio.ClosedResourceError
            if self._outgoing.reset:
                raise anyio.BrokenResourceError from _connection_reset()
            self._eof_sent = True
            self._outgoing.put_eof()

    async def aclose(self) -> None:
        """Close this end. Calling it again does nothing but checkpoint.

        The peer receives the bytes already sent (subject to `paused`), then
        `anyio.EndOfStream` (subject to `delay_eof`); its sends raise
        `anyio.BrokenResourceError`. What the peer sent that this stream hasn't
        received is dropped. Pending operations on this stream raise
        `anyio.ClosedResourceError`; a pending lockstep `send` delivers no more of its
        bytes.

        Cancellation: the stream is closed even if this is cancelled, so
        `anyio.aclose_forcefully` works.
        """
        if not self._closed:
            self._closed = True
            outgoing = self._outgoing
            if outgoing.lockstep:
                # A pending lockstep send hasn't succeeded, so it delivers no more; it
                # wakes up and raises ClosedResourceError. (With no send pending, the
                # pipe is empty already.)
                outgoing.discard()
            outgoing.put_eof()
            incoming = self._incoming
            incoming.reader_closed = True
            incoming.discard()
        await checkpoint()

    def _check_can_send(self) -> None:
        if self._closed or self._eof_sent:
            raise anyio.ClosedResourceError
        if self._outgoing.reset:
            raise anyio.BrokenResourceError from _connection_reset()
        if self._outgoing.reader_closed:
            raise anyio.BrokenResourceError("the peer closed its end of the stream")


def _make_pair(*, lockstep: bool) -> tuple[MemoryByteStream, MemoryByteStream]:
    left_to_right = _Pipe(lockstep=lockstep)
    right_to_left = _Pipe(lockstep=lockstep)
    return (
        MemoryByteStream(left_to_right, right_to_left),
        MemoryByteStream(right_to_left, left_to_right),
    )


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Make two connected in-memory byte streams with unbounded buffers.

    What one sends, the other receives. `MemoryByteStream.send` never blocks, so one
    task can send and then receive the answer, which is all a simple test needs. This is
    the in-memory counterpart of a socket pair; the streams' fault controls
    (`~MemoryByteStream.swallow`, `~MemoryByteStream.paused`, `~MemoryByteStream.trickle`,
    `~MemoryByteStream.delay_eof`, `~MemoryByteStream.reset`) simulate a misbehaving
    network or peer.

    It may be called outside of an event loop (for instance, in a synchronous fixture).

    Returns:
        The two ends, which are interchangeable.

    Example::

        client, server = memory_stream_pair()
        await client.send(b"ping")
        assert await server.receive() == b"ping"
        await server.aclose()
        with pytest.raises(anyio.EndOfStream):
            await client.receive()
    """
    return _make_pair(lockstep=False)


def lockstep_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Make two connected in-memory byte streams with no buffer at all.

    `MemoryByteStream.send` returns only once the peer has received every byte of it:
    the most "clogged" a transport can be. Use it to test write backpressure, and that a
    reader never waits on a writer (a connection whose reader is stuck behind a blocked
    send deadlocks here). Everything else, the fault controls included, works as on
    `memory_stream_pair`; see `MemoryByteStream.send` for what a cancelled send
    delivers.

    Returns:
        The two ends, which are interchangeable.

    Example::

        left, right = lockstep_stream_pair()
        async with anyio.create_task_group() as tg:
            tg.start_soon(left.send, b"abc")  # waits for the receive below
            await anyio.wait_all_tasks_blocked()
            assert await right.receive() == b"abc"
    """
    return _make_pair(lockstep=True)
