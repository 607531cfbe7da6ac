"""anyws' own asyncio transport, behind anyio's `~anyio.abc.ByteStream` interface.

Why: on asyncio, anyio's socket stream (an `asyncio.Protocol`) costs a WebSocket
connection more per message than the WebSocket work does. Each waiting
``receive()`` switches reading on and off (two ``epoll_ctl`` system calls on the
default loop), every read lands in a fresh 256 KiB `bytes` (an mmap/munmap for a
64-byte message), and every ``send()`` yields to the event loop once more after
writing. `AsyncioStream` runs on an `asyncio.BufferedProtocol` instead:

- reading stays on while a ``receive()`` waits, as with anyio's streams, but it
  isn't switched off and on around each one: a receiver that is back in
  ``receive()`` before the next bytes arrive (the reader of a connection usually
  is) never pays for it;
- the socket is read into one buffer per event loop (the loop reads one socket at
  a time), and the bytes read are copied out once;
- ``receive()`` returns at once when bytes are waiting, and ``send()`` returns at
  once when the kernel took everything, as with a plain socket;
- two extensions spare the connection's tasks a hop through the event loop per
  message: `AsyncioStream.try_write` writes from any task without waiting, and
  `AsyncioStream.set_consumer` lets the reader's work run in the callback that
  delivers the bytes while the reader waits.

The semantics are anyio's: a ``receive()`` cancelled while waiting loses nothing
(the bytes wait for the next call); ``send()`` returns once the transport's buffer
is empty, so that ``aclose()``, which aborts the connection as anyio's does, never
drops bytes a ``send()`` returned for; errors are `anyio.EndOfStream`,
`anyio.BrokenResourceError` (from the `OSError`) and `anyio.ClosedResourceError`.
It works on any asyncio event loop that supports buffered protocols, uvloop
included. Only public asyncio and anyio interfaces are used.

`connect` and `serve` choose it by themselves on asyncio, for TCP: `connect_tcp`
connects to an IP address with the event loop's own ``create_connection`` (a host
name goes through anyio's ``connect_tcp``, for its Happy Eyeballs, and `adopt` then
moves the stream onto it); `serve_natively` serves an anyio listener's socket with
the event loop's own server (``create_server``), and `accept_function` accepts
from it in a task where that can't be used. Any other anyio stream still works as
before.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast
from weakref import WeakKeyDictionary

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from ._tcp import connect_tcp as tcp_connect


__all__ = [
    "AsyncioStream",
    "NativeServer",
    "Waiter",
    "accept_function",
    "adopt",
    "close_forcefully",
    "connect_tcp",
    "running_loop",
    "serve_natively",
]

#: Bytes read per system call, into the event loop's buffer.
READ_SIZE = 2**18

#: Reading stops when this many bytes wait to be received, even for a waiting receiver.
HIGH_WATER = 2**18

_buffers: WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = WeakKeyDictionary()


def _read_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The buffer that ``loop``'s transports read into, one at a time."""
    buffer = _buffers.get(loop)
    if buffer is None:
        buffer = _buffers[loop] = memoryview(bytearray(READ_SIZE))
    return buffer


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio event loop running the current task, or ``None`` (trio, say).

    A trio guest run inside asyncio runs its tasks outside asyncio's, hence the
    check of the current task. ``None`` on Windows too, where `adopt`'s
    duplicated descriptor and the proactor's transports are untested: anyio's
    streams serve there.
    """
    if sys.platform == "win32":  # pragma: no cover
        return None
    try:
        if asyncio.current_task() is None:
            return None
    except RuntimeError:  # no asyncio event loop in this thread
        return None
    return asyncio.get_running_loop()


class Waiter(asyncio.Future[None]):
    """A one-shot event for one waiter, on asyncio: `anyio.Event`'s ``set`` and ``wait``.

    An `anyio.Event` on asyncio is an `asyncio.Event` (and its deque of waiters)
    and a future per wait; a connection makes one per message it waits for. This
    is the future alone. Cancelling the waiting task cancels it; ``set`` is then
    a no-op.
    """

    def set(self) -> None:
        if not self.done():
            self.set_result(None)

    def wait(self) -> Waiter:
        return self


class _Protocol(asyncio.BufferedProtocol):
    """Collects what the socket delivers, and wakes the one waiting reader or writer."""

    # Slots: one per connection (asyncio's protocols have slots: no __dict__ at all).
    __slots__ = (
        "buffer",
        "burst",
        "chunks",
        "consumer",
        "eof",
        "exc",
        "interrupted",
        "loop",
        "lost",
        "read_waiter",
        "reading_paused",
        "size",
        "transport",
        "write_waiter",
        "writing_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buffer = _read_buffer(loop)
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []  # few at a time; a deque costs 600 bytes more
        self.size = 0
        self.reading_paused = False
        self.writing_paused = False
        self.eof = False
        self.lost = False
        self.exc: BaseException | None = None
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.consumer: Callable[[bytes], bool] | None = None
        self.interrupted = False
        self.burst = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # or uvloop's
        # As anyio does: send() returns only when the kernel has every byte.
        self.transport.set_write_buffer_limits(0)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.burst = False
        data = bytes(self.buffer[:nbytes])
        consumer = self.consumer
        waiter = self.read_waiter
        if (
            consumer is not None
            and not self.chunks
            and waiter is not None
            and not waiter.done()
            and consumer(data)
        ):
            return  # consumed here, for the receiver that waits: no task hop
        self.chunks.append(data)
        self.size += nbytes
        if not self.reading_paused and (self.size >= HIGH_WATER or waiter is None or waiter.done()):
            # Nobody waits for these bytes: read no more until someone does, as
            # anyio's streams do, so that TCP pushes back on the peer when the
            # receiver stops receiving.
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self.wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake_reader()
        return True  # keep the transport open for writing (a half-close)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.exc = exc
        self.wake_reader()
        self.wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.wake_writer()

    def wake_reader(self) -> None:
        waiter = self.read_waiter
        if waiter is not None:
            self.read_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def wake_writer(self) -> None:
        waiter = self.write_waiter
        if waiter is not None:
            self.write_waiter = None
            if not waiter.done():
                waiter.set_result(None)


class _ServerProtocol(_Protocol):
    """A `_Protocol` of a `NativeServer`: hands its stream over once connected."""

    __slots__ = ("server",)

    def __init__(self, loop: asyncio.AbstractEventLoop, server: NativeServer) -> None:
        super().__init__(loop)
        self.server: NativeServer | None = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server, self.server = self.server, None
        assert server is not None
        assert self.transport is not None
        _set_nodelay(self.transport)
        server._accepted(AsyncioStream(self.transport, self))


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    """As anyio does (asyncio's transports do it too; uvloop's may not)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover
            pass


class AsyncioStream(anyio.abc.ByteStream):
    """A byte stream on an asyncio transport and a buffered protocol.

    Build it with `from_socket` (or `adopt`, `accept_function`), not directly.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this stream runs on."""
        return self._protocol.loop

    def new_waiter(self) -> Waiter:
        """A `Waiter` on this stream's event loop."""
        return Waiter(loop=self._protocol.loop)

    def set_consumer(self, consumer: Callable[[bytes], bool] | None) -> None:
        """Have bytes that arrive while a `receive` waits handed to ``consumer`` first.

        Called from the event loop's callback as bytes arrive, while a task waits
        in `receive` with nothing buffered, ``consumer(data)`` returns whether it
        took the bytes; if it didn't, they wait for `receive` as usual. This
        spares the waiting task a wake-up per read when the consumer can do its
        work synchronously. The consumer may call `interrupt_receive` to wake the
        waiting task all the same. ``None`` removes the consumer.
        """
        self._protocol.consumer = consumer

    def interrupt_receive(self) -> None:
        """Make the waiting (or next) `receive` return ``b""`` if no bytes wait."""
        self._protocol.interrupted = True
        self._protocol.wake_reader()

    def try_write(self, data: bytes, *, eof: bool = False, in_burst: bool = False) -> bool:
        """Write ``data`` now, without waiting, if that's the best thing to do.

        Returns ``False``, having written nothing, when the transport's buffer
        isn't empty (the peer is slow: wait for it in `send`), when the stream
        is closed or broken (`send` raises), or during a burst: after a write
        here, until bytes arrive or `send` writes. What comes next in a burst
        (messages sent in a loop, echoes of a batch of messages that arrived
        together) is better written in one call, by `send`, than in a system
        call each. Otherwise, writes and returns ``True``; the bytes are then in
        the kernel or in the transport's buffer, in order with everything
        written before. With ``eof``, half-closes after them (see `send_eof`).
        With ``in_burst``, writes during a burst too: a broadcast goes to many
        connections, one write each, and nothing follows it to write together.
        """
        protocol = self._protocol
        if (protocol.burst and not in_burst) or self._closed:
            return False
        if protocol.writing_paused or protocol.lost or self._transport.is_closing():
            return False
        if data:
            self._transport.write(data)
        if eof:
            # After the bytes in the transport's buffer, if any; errors show up
            # on the reading side.
            try:
                self._transport.write_eof()
            except (OSError, RuntimeError):
                pass
        # A burst lasts until bytes arrive or `send` writes: no timer (a callback
        # would cost a turn of the event loop per message).
        protocol.burst = True
        return True

    @classmethod
    async def from_socket(cls, sock: socket.socket) -> AsyncioStream:
        """Run a stream on a connected socket, which it then owns.

        Raises:
            OSError: The event loop could not take the socket.

        Cancellation closes the socket.
        """
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.connect_accepted_socket(lambda: _Protocol(loop), sock)
        except BaseException:
            sock.close()
            raise
        return cls(transport, protocol)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the bytes waiting, at most ``max_bytes``; wait for some if there are none.

        Raises:
            anyio.EndOfStream: The peer closed its side; nothing is left to receive.
            anyio.BrokenResourceError: The connection failed (``__cause__``: the OSError).
            anyio.ClosedResourceError: The stream was closed with `aclose`.
            anyio.BusyResourceError: Another task is receiving.

        Cancellation while waiting loses nothing: the bytes wait for the next call.
        """
        protocol = self._protocol
        chunks = protocol.chunks
        if not chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if protocol.read_waiter is not None:
                raise anyio.BusyResourceError("reading from")
            if protocol.reading_paused and not protocol.lost:
                protocol.reading_paused = False
                self._transport.resume_reading()
            if not (protocol.eof or protocol.lost or protocol.interrupted):
                waiter = protocol.read_waiter = protocol.loop.create_future()
                try:
                    await waiter
                finally:
                    if protocol.read_waiter is waiter:
                        protocol.read_waiter = None
            if not chunks:
                if protocol.interrupted:
                    protocol.interrupted = False
                    return b""
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.exc is not None:
                    raise anyio.BrokenResourceError from protocol.exc
                raise anyio.EndOfStream
        if len(chunks) == 1:
            data = chunks.pop()
        else:
            data = b"".join(chunks)
            chunks.clear()
        if len(data) > max_bytes:
            chunks.append(data[max_bytes:])
            data = data[:max_bytes]
        protocol.size -= len(data)
        return data

    async def send(self, item: bytes) -> None:
        """Write ``item``; return once the kernel has all of it.

        Raises:
            anyio.BrokenResourceError: The connection failed (``__cause__``: the OSError).
            anyio.ClosedResourceError: The stream was closed with `aclose`.

        Cancellation while waiting for the kernel to take the bytes leaves them
        in the transport's buffer: they are still sent.
        """
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.exc
        try:
            self._transport.write(item)
        except RuntimeError as exc:  # uvloop, on a transport a reset closed
            raise anyio.BrokenResourceError from exc
        protocol.burst = False
        while protocol.writing_paused:
            waiter = protocol.write_waiter = protocol.loop.create_future()
            try:
                await waiter
            finally:
                if protocol.write_waiter is waiter:
                    protocol.write_waiter = None
            if self._closed:
                raise anyio.ClosedResourceError
            if protocol.lost:
                raise anyio.BrokenResourceError from protocol.exc

    async def drain(self) -> None:
        """Wait until the transport's buffer is empty (or the connection lost).

        Cancellation stops the wait only.
        """
        protocol = self._protocol
        while protocol.writing_paused and not protocol.lost and not self._closed:
            waiter = protocol.write_waiter = protocol.loop.create_future()
            try:
                await waiter
            finally:
                if protocol.write_waiter is waiter:
                    protocol.write_waiter = None

    async def send_eof(self) -> None:
        """Half-close: send a FIN after the bytes already written.

        Raises:
            anyio.ClosedResourceError: The stream was closed with `aclose`.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._transport.write_eof()
        except OSError:
            pass

    async def aclose(self) -> None:
        """Abort the connection at once (as anyio's socket streams do), and wake waiters."""
        self.abort()
        await anyio.lowlevel.checkpoint()

    def abort(self) -> None:
        """`aclose` without the checkpoint: what `anyio.aclose_forcefully` would do."""
        if not self._closed:
            self._closed = True
            self._transport.abort()
            self._protocol.wake_reader()
            self._protocol.wake_writer()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._transport.get_extra_info("socket")
        if sock is None:  # pragma: no cover - a transport without a socket
            return {}
        attributes: dict[Any, Callable[[], Any]] = {
            SocketAttribute.family: lambda: sock.family,
            SocketAttribute.local_address: lambda: _convert(sock.getsockname()),
            SocketAttribute.raw_socket: lambda: sock,
        }
        try:
            peername = _convert(sock.getpeername())
        except OSError:
            peername = None
        if peername is not None:
            attributes[SocketAttribute.remote_address] = lambda: peername
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attributes[SocketAttribute.local_port] = lambda: sock.getsockname()[1]
            if peername is not None:
                remote_port = peername[1]
                attributes[SocketAttribute.remote_port] = lambda: remote_port
        return attributes


def _convert(address: Any) -> Any:
    """An IPv6 address as anyio gives it: ``(host, port)``, the scope in the host."""
    if isinstance(address, tuple) and len(address) == 4:
        host, port, _flowinfo, scope_id = address
        if scope_id:
            return f"{host.split('%')[0]}%{scope_id}", port
        return host, port
    return address


async def close_forcefully(stream: anyio.abc.AnyByteStream) -> None:
    """`anyio.aclose_forcefully`, cheaper for an `AsyncioStream`: no cancel scope."""
    if isinstance(stream, AsyncioStream):
        stream.abort()
    else:
        await anyio.aclose_forcefully(stream)


def _is_tcp(stream_or_listener: anyio.TypedAttributeProvider) -> bool:
    family = stream_or_listener.extra(SocketAttribute.family, None)
    return family in (socket.AF_INET, socket.AF_INET6)


async def adopt(stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
    """On asyncio, move a TCP stream that nothing has read from onto `AsyncioStream`.

    The socket is duplicated, the new descriptor gets the new transport, and
    ``stream`` is closed, which closes the old descriptor only: the connection
    stays open. Anything ``stream`` had read already would be lost, so call this
    right after connecting, before anything is sent (anyio's asyncio
    ``connect_tcp`` doesn't read until asked to). Any other stream, and any
    stream on trio, is returned as it is.

    Raises:
        OSError: The socket couldn't be duplicated; ``stream`` is closed.
    """
    if running_loop() is None or not isinstance(stream, anyio.abc.SocketStream):
        return stream
    if not _is_tcp(stream):
        return stream
    try:
        raw = stream.extra(SocketAttribute.raw_socket)
        # uvloop's is a stand-in, without dup(): duplicate its descriptor.
        sock = (
            raw.dup()
            if isinstance(raw, socket.socket)
            else socket.socket(fileno=os.dup(raw.fileno()))
        )
        sock.setblocking(False)
        new = await AsyncioStream.from_socket(sock)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    # asyncio's transport or uvloop's (which doesn't derive from asyncio's classes).
    abort = getattr(getattr(stream, "_transport", None), "abort", None)
    if callable(abort):
        # Close the old descriptor only. Not stream.aclose(): anyio before 4.16
        # half-closes the connection there (write_eof(): shutdown(SHUT_WR) acts on
        # the connection, not on one descriptor), and the server then reads the
        # end of the stream before the opening handshake. abort() is what anyio
        # 4.16's aclose() does; the stream then counts as closed. anyio doesn't
        # expose its transport, hence ``_transport``, there in every anyio 4.
        abort()
        return new
    # Not reached with anyio 4 (asyncio's stream has a transport).
    try:
        await stream.aclose()
    except BaseException:
        new.abort()
        raise
    return new


async def connect_tcp(host: str, port: int) -> anyio.abc.ByteStream:
    """`anyws._tcp.connect_tcp`, on `AsyncioStream` on asyncio.

    To an IP address, the event loop connects with ``create_connection`` and the
    stream's protocol gets the socket at once: no anyio stream first, no
    duplicated descriptor (`adopt`), one registration with the loop. A host name
    goes through `anyws._tcp.connect_tcp` (anyio's Happy Eyeballs over its
    addresses) and `adopt`. Elsewhere (trio), `anyws._tcp.connect_tcp`.

    Raises:
        OSError: The connection failed: the socket's own error
            (`ConnectionRefusedError`, with its errno, for example), as
            `anyws._tcp.connect_tcp` raises it.

    Cancellation closes the socket.
    """
    loop = running_loop()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        loop = None
    if loop is None:
        return await adopt(await tcp_connect(host, port))
    # One address: create_connection raises that attempt's own error.
    transport, protocol = await loop.create_connection(lambda: _Protocol(loop), host, port)
    _set_nodelay(transport)
    return AsyncioStream(transport, protocol)


class NativeServer:
    """The event loop's own server on a listening socket, with an ``accept()``.

    The loop accepts in its callback, every connection waiting at once, and makes
    each an `AsyncioStream` that waits for ``accept()``: no accept system call
    nor (de)registration of the socket with the loop per connection, as
    ``sock_accept`` costs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: deque[AsyncioStream] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._closed = False

    def _accepted(self, stream: AsyncioStream) -> None:
        if self._closed:
            stream.abort()
            return
        self._ready.append(stream)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def accept(self) -> AsyncioStream:
        """The next connection; wait for one if none is waiting.

        Raises:
            anyio.ClosedResourceError: The server was closed.

        Cancellation loses no connection (it waits for the next call).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        ready = self._ready
        while not ready:
            if self._closed:
                raise anyio.ClosedResourceError
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return ready.popleft()

    def close(self) -> None:
        """Stop accepting, close the listening socket, abort what wasn't accepted yet.

        Idempotent; a waiting ``accept()`` raises `anyio.ClosedResourceError`.
        """
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        while self._ready:
            self._ready.popleft().abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


async def serve_natively(listener: anyio.abc.Listener[Any], backlog: int) -> NativeServer | None:
    """On asyncio, serve a TCP ``listener``'s socket with the event loop's own server.

    The socket listens again with ``backlog`` (give the one it was bound with).
    `NativeServer.close` closes the socket; close the listener too. Returns
    ``None`` elsewhere (trio, Unix sockets...): accept with `accept_function` or
    ``listener.accept`` then.

    Raises:
        OSError: The event loop couldn't serve the socket.
    """
    loop = running_loop()
    if loop is None or not isinstance(listener, anyio.abc.SocketListener):
        return None
    if not _is_tcp(listener):
        return None
    raw: socket.socket = listener.extra(SocketAttribute.raw_socket)
    server = NativeServer(loop)
    server._server = await loop.create_server(
        lambda: _ServerProtocol(loop, server), sock=raw, backlog=backlog
    )
    return server


def accept_function(
    listener: anyio.abc.Listener[Any],
) -> Callable[[], Any] | None:
    """On asyncio, an ``accept()`` for a TCP ``listener`` that gives `AsyncioStream`.

    It accepts from the listener's socket, as anyio's ``accept()`` does, and
    raises `anyio.ClosedResourceError` once the listener is closed. Returns
    ``None`` elsewhere: use ``listener.accept``.
    """
    loop = running_loop()
    if loop is None or not isinstance(listener, anyio.abc.SocketListener):
        return None
    if not _is_tcp(listener):
        return None
    raw: socket.socket = listener.extra(SocketAttribute.raw_socket)

    async def accept() -> AsyncioStream:
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            if raw.fileno() == -1:
                raise anyio.ClosedResourceError
            try:
                sock, _ = await loop.sock_accept(raw)
            except asyncio.CancelledError:
                # The loop may keep watching the socket after a cancelled accept
                # (bpo-41317, Python 3.10): stop, before the listener closes it.
                try:
                    loop.remove_reader(raw)
                except (ValueError, NotImplementedError, OSError):
                    pass
                raise
            except OSError:
                if raw.fileno() == -1:
                    raise anyio.ClosedResourceError from None
                raise
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return await AsyncioStream.from_socket(sock)
            except OSError:
                # This connection is gone already (reset): accept the next one.
                sock.close()

    return accept
