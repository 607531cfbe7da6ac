"""The sync connection: a thread-safe, blocking face on an async `anyws.Connection`.

Theory of operation
-------------------
Every async connection lives in an event loop that runs in a thread of its own,
behind an anyio `~anyio.from_thread.BlockingPortal` (`EventLoopThread`): one
loop per client connection, one per server. A sync method hands a coroutine to
the portal and blocks on its result, so all the work happens in the loop
thread and the async connection needs no lock of its own: calls from several
threads are serialised by the loop like calls from several tasks.

Three rules keep this from hanging:

- Calling a blocking method from the loop thread itself (from async code, or a
  callback, running on that loop) raises `RuntimeError` at once instead of
  deadlocking.
- Once the loop is stopped, methods behave as on a closed connection:
  `recv` and `send` raise the `~anyws.exceptions.ConnectionClosed` that closed
  it, `close` returns.
- The loop thread is a daemon thread, so interpreter exit never waits for a
  connection that was not closed.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._connection import (
    Connection as AsyncConnection,
    Data,
    DataLike,
    closed_exc,
    is_closed,
    queued_messages,
)
from ..exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK


if TYPE_CHECKING:
    from ..sansio import Request, Response, State


__all__ = ["Connection"]

T = TypeVar("T")

_DONE = object()


class EventLoopThread:
    """An event loop running in a daemon thread, reached through a blocking portal.

    Args:
        backend: The anyio backend: ``"asyncio"`` or ``"trio"``.
        backend_options: Options for `anyio.run`, e.g. ``{"use_uvloop": True}``.
        name: The thread's name.
    """

    def __init__(self, backend: str, backend_options: dict[str, Any] | None, *, name: str) -> None:
        # What anyio.from_thread.start_blocking_portal() does, minus its generator:
        # left suspended in an unclosed connection, it would be finalized at
        # interpreter exit and wait there for a daemon thread that no longer runs.
        started: concurrent.futures.Future[anyio.from_thread.BlockingPortal]
        started = concurrent.futures.Future()

        async def run_portal() -> None:
            async with anyio.from_thread.BlockingPortal() as portal:
                started.set_result(portal)
                await portal.sleep_until_stopped()

        def run_loop() -> None:
            try:
                anyio.run(run_portal, backend=backend, backend_options=backend_options)
            except BaseException as exc:  # the backend is missing, for example
                if not started.done():
                    started.set_exception(exc)
                else:  # pragma: no cover - run_portal never raises once started
                    raise

        self._thread = threading.Thread(target=run_loop, name=name, daemon=True)
        self._thread.start()
        #: The portal of the event loop.
        self.portal = started.result()
        self.thread_id = self._thread.ident
        # Calls go through from_thread.run with this token rather than through the
        # portal: one round trip between threads instead of two.
        self._token = self.portal.call(anyio.lowlevel.current_token)
        self.stopped = False
        self._stop_lock = threading.Lock()

    def check_thread(self, name: str) -> None:
        """Raise `RuntimeError` when called from the event loop thread, where waiting deadlocks."""
        if threading.get_ident() == self.thread_id:
            raise RuntimeError(
                f"cannot call {name}() from the event loop thread of this connection: "
                "it would wait for itself; use the async API (anyws.connect, anyws.serve) "
                "in async code"
            )

    def call(self, name: str, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``func(*args)`` in the event loop and wait for its result.

        Raises:
            RuntimeError: Called from the event loop thread, or the loop is stopped
                (see `stopped`).
        """
        self.check_thread(name)
        # Interrupted (KeyboardInterrupt), the call is cancelled rather than left
        # running: a cancelled async recv() loses no message, and the next call
        # doesn't find the connection busy. The interruption may come before the
        # task starts, or while it runs: `abandoned` and `scopes` cover both.
        scopes: list[anyio.CancelScope] = []
        finished = threading.Event()
        abandoned = False

        async def run() -> T:
            try:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    if abandoned:
                        scope.cancel()
                    return await func(*args)
                raise RuntimeError(f"{name}() was interrupted")
            finally:
                finished.set()

        try:
            result: T = anyio.from_thread.run(run, token=self._token)
        except BaseException:
            abandoned = True
            if scopes and not finished.is_set():
                try:
                    anyio.from_thread.run_sync(scopes[0].cancel, token=self._token)
                except RuntimeError:  # pragma: no cover - the loop stopped: it cancelled
                    pass
                finished.wait()
            raise
        return result

    def stop(self, *, cancel: bool = False) -> None:
        """Stop the loop and join its thread. Idempotent.

        Args:
            cancel: Cancel the tasks still running in the portal; otherwise wait
                for them to end.
        """
        with self._stop_lock:
            if self.stopped:
                return
            self.stopped = True
        try:
            self.portal.call(self.portal.stop, cancel)
        except RuntimeError:  # pragma: no cover - the loop ended on its own
            pass
        self._thread.join()


class Connection:
    """A WebSocket connection with a blocking API, safe to use from several threads.

    The common base of `~anyws.sync.ClientConnection` and
    `~anyws.sync.ServerConnection`, given by `~anyws.sync.connect` and
    `~anyws.sync.serve`; never created directly.

    Messages, exceptions and close codes are those of the async
    `anyws.Connection` it wraps: `async_connection`, which runs in the event loop
    of `portal`. Blocking methods raise `RuntimeError` when called from that
    event loop's thread.
    """

    def __init__(self, loop: EventLoopThread, connection: AsyncConnection) -> None:
        self._loop = loop
        #: The async connection, to use from the event loop through `portal`.
        self.async_connection = connection
        #: The blocking portal of the event loop that runs the connection.
        self.portal = loop.portal

    # Attributes ------------------------------------------------------------

    @property
    def id(self) -> uuid.UUID:
        """Unique identifier of the connection, for logs."""
        return self.async_connection.id

    @property
    def logger(self) -> Any:
        """The logger of the connection."""
        return self.async_connection.logger

    @property
    def state(self) -> State:
        """State of the connection, one of CONNECTING, OPEN, CLOSING and CLOSED."""
        return self.async_connection.state

    @property
    def close_code(self) -> int | None:
        """The close code received; 1006 without one; ``None`` until CLOSED."""
        return self.async_connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` until CLOSED."""
        return self.async_connection.close_reason

    @property
    def request(self) -> Request | None:
        """The opening handshake's request."""
        return self.async_connection.request

    @property
    def response(self) -> Response | None:
        """The opening handshake's response."""
        return self.async_connection.response

    @property
    def latency(self) -> float:
        """Round-trip time of the last keepalive ping, in seconds; 0 until one completes."""
        return self.async_connection.latency

    @property
    def local_address(self) -> Any:
        """The local address of the transport, as anyio reports it, or ``None``."""
        return self.async_connection.local_address

    @property
    def remote_address(self) -> Any:
        """The remote address of the transport, as anyio reports it, or ``None``."""
        return self.async_connection.remote_address

    # Context manager and iteration ---------------------------------------

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close with 1000, or with 1011 when the block raised."""
        self.close(1000 if exc is None else 1011)

    def __iter__(self) -> Iterator[Data]:
        """Iterate on incoming messages; ends on a normal close, raises on an abnormal one."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # Receiving -------------------------------------------------------------

    @overload
    def recv(self, timeout: float | None, decode: Literal[True]) -> str: ...
    @overload
    def recv(self, timeout: float | None, decode: Literal[False]) -> bytes: ...
    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[True]) -> str: ...
    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[False]) -> bytes: ...
    @overload
    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data: ...

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Receive the next message, waiting at most ``timeout`` seconds.

        Args:
            timeout: ``None`` waits as long as it takes; ``0`` or less only
                returns a message that was received already.
            decode: ``None`` returns text messages as `str` and binary messages as
                `bytes`; ``True`` decodes binary messages as UTF-8 too; ``False``
                returns text messages as UTF-8 `bytes`, without decoding.

        Raises:
            TimeoutError: No whole message arrived in time. Nothing is lost: a
                message that arrives later is returned by the next call.
            ConnectionClosedOK: The connection closed normally, and every message
                received before was returned.
            ConnectionClosedError: The connection closed with an error or was lost.
            ConcurrencyError: Another thread is in `recv` or `recv_streaming`.
            RuntimeError: Called from the connection's event loop thread.
        """
        try:
            return self._call("recv", self._recv, timeout, decode)
        except ConcurrencyError:
            raise ConcurrencyError(
                "cannot call recv while another thread is already running recv or recv_streaming"
            ) from None

    async def _recv(self, limit: float | None, decode: bool | None) -> Data:
        connection = self.async_connection
        recv: Callable[[bool | None], Awaitable[Data]] = connection.recv
        if limit is None:
            return await recv(decode)
        if limit <= 0:
            # An expired deadline would cancel recv() even with a message queued:
            # look at the queue instead.
            if queued_messages(connection) == 0 and not is_closed(connection):
                raise TimeoutError(f"timed out in {limit:.1f}s")
            return await recv(decode)
        with anyio.move_on_after(limit):
            return await recv(decode)
        raise TimeoutError(f"timed out in {limit:.1f}s")

    @overload
    def recv_streaming(self, decode: Literal[True]) -> Iterator[str]: ...
    @overload
    def recv_streaming(self, decode: Literal[False]) -> Iterator[bytes]: ...
    @overload
    def recv_streaming(self, decode: bool | None = None) -> Iterator[Data]: ...

    def recv_streaming(self, decode: bool | None = None) -> Iterator[Data]:
        """Receive the next message fragment by fragment, as frames arrive.

        Text fragments are decoded incrementally; the iterator ends with the
        message. A caller that stops iterating early leaves the rest of the
        message for the next `recv` or `recv_streaming`.

        Raises:
            ConnectionClosedOK, ConnectionClosedError: As for `recv`.
            ConcurrencyError: Another thread is in `recv` or `recv_streaming`.
            RuntimeError: Called from the connection's event loop thread.
        """
        self._loop.check_thread("recv_streaming")
        recv_streaming: Callable[[bool | None], AsyncGenerator[Data]]
        recv_streaming = self.async_connection.recv_streaming  # type: ignore[assignment]
        fragments = recv_streaming(decode)
        try:
            while True:
                try:
                    fragment = self._call("recv_streaming", _anext, fragments)
                except ConcurrencyError:
                    raise ConcurrencyError(
                        "cannot call recv_streaming while another thread is already "
                        "running recv or recv_streaming"
                    ) from None
                if fragment is _DONE:
                    return
                yield fragment
        finally:
            if not self._loop.stopped:
                try:
                    self.portal.call(_aclose, fragments)
                except RuntimeError:  # pragma: no cover - the loop stopped meanwhile
                    pass

    # Sending ---------------------------------------------------------------

    def send(
        self,
        message: DataLike | Iterable[DataLike],
        text: bool | None = None,
        *,
        compress: bool = True,
    ) -> None:
        """Send a message.

        A `str` is sent as a text frame, a bytes-like object as a binary frame;
        ``text=True`` sends bytes (already UTF-8) as text, ``text=False`` sends a
        `str` as binary. An iterable of those is sent as one fragmented message,
        a frame per item. Items of a list or tuple are sent as they are; other
        iterables (generators) are iterated in a worker thread, never in the
        event loop, so they may block. ``compress=False`` skips
        permessage-deflate for this message. Safe to call from several threads:
        messages are not interleaved.

        Raises:
            ConnectionClosed: The connection is closed or closing.
            TypeError: The message, or a fragment, has an unsupported type, or
                fragments mix text and bytes.
            RuntimeError: Called from the connection's event loop thread.

        An error raised by a generator after the first fragment went out leaves an
        unfinished message on the wire: the connection is failed with 1011.
        """
        if not isinstance(message, str | bytes | bytearray | memoryview | list | tuple):
            if not isinstance(message, Iterable):
                raise TypeError(f"message has unsupported type {type(message).__name__}")
            self._call("send", self._send_iterator, iter(message), text, compress)
            return
        self._call("send", self._send, message, text, compress)

    async def _send(
        self, message: DataLike | Iterable[DataLike], text: bool | None, compress: bool
    ) -> None:
        await self.async_connection.send(message, text, compress=compress)

    async def _send_iterator(
        self, iterator: Iterator[DataLike], text: bool | None, compress: bool
    ) -> None:
        async def fragments() -> Any:
            while True:
                # User code may block: run it in a worker thread, not in the loop.
                fragment = await anyio.to_thread.run_sync(next, iterator, _DONE)
                if fragment is _DONE:
                    return
                yield fragment

        await self.async_connection.send(fragments(), text, compress=compress)

    def ping(self, data: DataLike | None = None, *, ack_on_close: bool = False) -> threading.Event:
        """Send a ping; return an event set when the matching pong arrives.

        A pong answers every ping sent before the one it matches (RFC 6455,
        section 5.5.3); `latency` is updated when it arrives. ``ws.ping().wait(5)``
        waits up to five seconds for the pong.

        Args:
            data: The payload, at most 125 bytes; four random bytes by default.
            ack_on_close: Also set the event when the connection closes before
                the pong arrives (then check `state` to know which happened).

        Raises:
            ConnectionClosed: The connection is closed or closing.
            ConcurrencyError: A ping with the same payload waits for its pong.
            RuntimeError: Called from the connection's event loop thread.
        """
        waiter = self._call("ping", self.async_connection.ping, data)
        pong_received = threading.Event()
        try:
            # A task of the portal: it ends with the pong or with the connection.
            self.portal.start_task_soon(_wait_for_pong, waiter, pong_received, ack_on_close)
        except RuntimeError:  # pragma: no cover - the loop stopped since: closed
            if ack_on_close:
                pong_received.set()
        return pong_received

    def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically).

        Raises:
            ConnectionClosed: The connection is closed or closing.
            RuntimeError: Called from the connection's event loop thread.
        """
        self._call("pong", self.async_connection.pong, data)

    # Closing ---------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake, and wait until the connection is closed.

        Waits at most ``close_timeout`` for the peer; then aborts the transport.
        Idempotent. A thread blocked in `recv` wakes up with
        `~anyws.exceptions.ConnectionClosedOK`.

        Raises:
            ProtocolError: ``code`` may not be sent, or ``reason`` is too long.
            RuntimeError: Called from the connection's event loop thread.
        """
        try:
            self._call("close", self.async_connection.close, code, reason)
        except ConnectionClosed:  # pragma: no cover - the loop is stopped: closed already
            pass

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; return whether it is.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            RuntimeError: Called from the connection's event loop thread.
        """
        try:
            return self._call("wait_closed", self._wait_closed, timeout)
        except ConnectionClosed:
            return True

    async def _wait_closed(self, limit: float | None) -> bool:
        with anyio.move_on_after(limit):
            await self.async_connection.wait_closed()
            return True
        return False

    # Internals -------------------------------------------------------------

    def _call(self, name: str, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``func(*args)`` in the event loop; once it stopped, raise why it closed."""
        loop = self._loop
        if not loop.stopped:
            try:
                return loop.call(name, func, *args)
            except BaseException as exc:
                # A call that raced with the end of the loop finds it finished
                # (RuntimeError) or is cancelled as the loop ends.
                if not loop.stopped or not _ended_with_loop(exc):
                    raise
        loop.check_thread(name)
        raise closed_exc(self.async_connection)


def _ended_with_loop(exc: BaseException) -> bool:
    """Whether ``exc`` says that the event loop ended under a call."""
    if isinstance(exc, RuntimeError | concurrent.futures.CancelledError):
        return True
    # The backend's cancellation (asyncio.CancelledError, trio.Cancelled).
    return not isinstance(exc, Exception | KeyboardInterrupt | SystemExit | GeneratorExit)


async def _anext(iterator: Any) -> Any:
    """The next item of an async iterator, or `_DONE` (a portal can't carry StopAsyncIteration)."""
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _DONE


async def _aclose(generator: AsyncGenerator[Any]) -> None:
    await generator.aclose()


async def _wait_for_pong(
    waiter: Awaitable[float], pong_received: threading.Event, ack_on_close: bool
) -> None:
    try:
        await waiter
    except ConnectionClosed:
        if not ack_on_close:
            return
    pong_received.set()
