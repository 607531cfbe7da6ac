"""Reconnecting with backoff: `reconnect` and `ConnectionAttempt`.

Why the attempts and the ``async with``
---------------------------------------
websockets reconnects with ``async for websocket in connect(uri)``: an async
generator that opens a connection, yields it from inside the context that runs
its background tasks, and closes it when the loop comes round. Under structured
concurrency that shape is wrong. A connection's background tasks (reader,
writer, keepalive) live in a task group, and trio's rule is that no task group
nor cancel scope may stay open across a ``yield`` of an async generator: while
the generator is suspended, the caller's code runs "inside" the task group, so
a cancellation or an error meant for one would be delivered to the other, or
lost (trio's documentation, "Notes on async generators"; PEP 789; flake8-async's
ASYNC101). anyws runs the same code on trio and asyncio, so it follows the
rule everywhere.

So the work is split at the only place where it can be: the opening handshake
needs no background task (`open_connection` runs TCP, TLS, redirects and the
handshake from the calling task and returns a connection whose tasks aren't
started). Each step of the iteration over `reconnect` does that, with its
retries and its backoff sleeps, and returns a `ConnectionAttempt`. The caller enters the attempt
with ``async with attempt as websocket:``, and that ``async with``, in the
caller's own frame, opens and closes the connection's task group (`Running`),
exactly like ``async with connect(uri)`` does. Nothing is left open between
two steps of the iteration. (The iterator is a class with ``__anext__``
rather than an async generator only because trio warns about async generators
left unfinished, and leaving with ``break`` is normal here.)
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, final

import anyio

from ._client import ClientConnection, connect, open_connection
from ._connection import TRANSPORT_ERRORS, Running
from .exceptions import ConcurrencyError, InvalidMessage, InvalidStatus


__all__ = ["ConnectionAttempt", "backoff_delays", "process_exception", "reconnect"]

#: websockets' defaults: a first delay drawn in [0, 5 s] (RFC 6455, section 7.2.3,
#: asks clients to randomise the first reconnection), then 3.1 s growing by the
#: golden ratio up to 90 s.
BACKOFF_INITIAL_DELAY = 5.0
BACKOFF_MIN_DELAY = 3.1
BACKOFF_MAX_DELAY = 90.0
BACKOFF_FACTOR = 1.618

#: Statuses that tell of a server or proxy that may recover: 500, 502, 503, 504.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


def backoff_delays(
    initial_delay: float = BACKOFF_INITIAL_DELAY,
    min_delay: float = BACKOFF_MIN_DELAY,
    max_delay: float = BACKOFF_MAX_DELAY,
    factor: float = BACKOFF_FACTOR,
    *,
    random: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield the delays between reconnection attempts, in seconds, forever.

    The first is ``random() * initial_delay`` (jitter, so that clients cut off
    together don't come back together); then ``min_delay``, multiplied by
    ``factor`` at each step while it's below ``max_delay``; then ``max_delay``.
    ``random`` returns a float in [0, 1); pass a constant to test.
    """
    yield random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay


def process_exception(exc: Exception) -> Exception | None:
    """Decide whether a failed connection attempt is retried: the default.

    Returns ``None`` to retry, for errors that may be transient:

    - `OSError` (refused, reset, unreachable; `ssl.SSLError` too, as in
      websockets) and `TimeoutError` (``open_timeout``);
    - `InvalidMessage` when the server closed the connection during the
      handshake (its cause is an `EOFError` or a transport error);
    - `InvalidStatus` with 500, 502, 503 or 504: a server or a proxy that
      may recover.

    Returns ``exc`` otherwise, and `reconnect` raises it.
    """
    if isinstance(exc, (OSError, TimeoutError)):
        return None
    if isinstance(exc, InvalidMessage) and _closed_during_handshake(exc):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in RETRYABLE_STATUSES:
        return None
    return exc


def _closed_during_handshake(exc: InvalidMessage) -> bool:
    cause = exc.__cause__
    return isinstance(cause, (EOFError, *TRANSPORT_ERRORS))


@final
class ConnectionAttempt:
    """A connection that `reconnect` opened; enter it to run it.

    The opening handshake is done; the connection's background tasks start when
    the attempt is entered with ``async with attempt as websocket:`` and stop
    when that block exits, after the closing handshake, just as with
    `connect`. Enter it at most once, before asking `reconnect` for the next
    attempt: an attempt still not entered by then is abandoned (its TCP
    connection is closed). Like any task group, the one that the ``async with``
    owns must be entered and exited in the same task.

    Entering an attempt a second time, or after it was abandoned, raises
    `RuntimeError`.
    """

    def __init__(self, connection: ClientConnection) -> None:
        #: The connection; usable once the attempt is entered.
        self.connection = connection
        self._state = "pending"
        self._running: Running | None = None

    async def __aenter__(self) -> ClientConnection:
        if self._state != "pending":
            raise RuntimeError(f"this connection attempt was {self._state} already")
        self._state = "entered"
        self._running = Running(self.connection)
        await self._running.__aenter__()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        running = self._running
        assert running is not None, "ConnectionAttempt exited without being entered"
        self._running = None
        await running.__aexit__(exc_type, exc, traceback)

    async def _abandon(self) -> None:
        """Close the connection's stream if the attempt was never entered."""
        if self._state == "pending":
            self._state = "abandoned"
            await anyio.aclose_forcefully(self.connection.transport)


class reconnect:  # used like a function, as connect is
    """Connect, and reconnect whenever the connection ends or fails to open.

    Iterate to get one `ConnectionAttempt` per connection; entering the attempt
    runs the connection::

        async for attempt in anyws.reconnect(uri):
            try:
                async with attempt as websocket:
                    async for message in websocket:
                        print(message)
            except anyws.ConnectionClosed:
                continue

    Each step of the loop opens a connection: TCP, TLS, redirects and the
    opening handshake, bounded by ``open_timeout``. When that fails,
    ``process_exception`` decides: retry after a delay, or raise, which ends the
    loop. The delays grow exponentially, with jitter (see the ``backoff_*``
    arguments: websockets' defaults), and start over after every successful
    handshake, so the step after a connection that opened and later closed
    connects at once. Each failure that is retried is logged at INFO on the
    connection's logger.

    Why an attempt to enter rather than the connection itself (websockets'
    ``async for websocket in connect(uri)``): the connection's background tasks
    run in a task group, and no task group may stay open across the ``yield`` of
    an async generator (trio's rule; anyws keeps it on every backend). So the
    iteration only opens connections, which needs no background task, and the
    caller's ``async with`` starts and stops the connection's tasks.

    An attempt that isn't entered before the next step is abandoned: its TCP
    connection is closed. To leave the loop before entering an attempt, call
    `aclose` (or iterate inside ``async with contextlib.aclosing(reconnect(uri))
    as attempts:``) to close it at once.

    `reconnect` is its own async iterator, not an async generator: trio warns
    (`ResourceWarning`) about every async generator left unfinished, and
    ``break`` is the normal way out of this loop.

    Cancellation: cancelling the task during a connection attempt or a backoff
    delay ends the loop (the cancellation propagates out of ``async for``) with
    nothing left open.

    Args:
        uri: A ``ws://`` or ``wss://`` URI.
        process_exception: Called with each exception that a connection attempt
            raised (an `Exception`: cancellation always propagates); returns
            ``None`` to retry, or the exception to raise (``exc`` itself or
            another one, chained to ``exc``). `reconnect.process_exception` is
            the default; call it from yours to extend it.
        backoff_initial_delay: The first delay is drawn uniformly in
            [0, ``backoff_initial_delay``) seconds.
        backoff_min_delay: The second delay, in seconds.
        backoff_max_delay: The longest delay, in seconds.
        backoff_factor: How much each delay grows over the previous one.
        **kwargs: Passed to `connect` (``open_timeout``, ``ssl``,
            ``additional_headers``, ``max_redirects``...), except ``stream``,
            which can't be opened twice.

    Raises:
        InvalidURI: ``uri`` isn't a valid WebSocket URI (at once).
        ValueError: An argument is invalid (at once).
        Exception: During the iteration, what ``process_exception`` returns.
    """

    #: The default ``process_exception``.
    process_exception = staticmethod(process_exception)

    def __init__(
        self,
        uri: str,
        *,
        process_exception: Callable[[Exception], Exception | None] | None = None,
        backoff_initial_delay: float = BACKOFF_INITIAL_DELAY,
        backoff_min_delay: float = BACKOFF_MIN_DELAY,
        backoff_max_delay: float = BACKOFF_MAX_DELAY,
        backoff_factor: float = BACKOFF_FACTOR,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("stream") is not None:
            raise ValueError("reconnect() can't reuse a stream; pass a URI to connect to")
        if backoff_initial_delay < 0 or backoff_min_delay < 0 or backoff_max_delay < 0:
            raise ValueError("backoff delays must be 0 or more")
        if backoff_factor < 1:
            raise ValueError("backoff_factor must be 1 or more")
        #: The `connect` that opens each connection.
        self.connect = connect(uri, **kwargs)
        self._process_exception = process_exception or reconnect.process_exception
        self._backoff = (
            backoff_initial_delay,
            backoff_min_delay,
            backoff_max_delay,
            backoff_factor,
        )
        self.logger = self.connect.logger or logging.getLogger("anyws.client")
        self._delays: Iterator[float] | None = None
        self._pending: ConnectionAttempt | None = None
        self._busy = False

    def __aiter__(self) -> reconnect:
        return self

    async def __anext__(self) -> ConnectionAttempt:
        """Open the next connection, retrying with backoff; return it unstarted.

        Raises:
            Exception: What ``process_exception`` returned for a failed attempt.
            ConcurrencyError: Another task is waiting for an attempt already.
        """
        if self._busy:
            raise ConcurrencyError("another task is waiting for the next connection attempt")
        self._busy = True
        try:
            await self.aclose()
            while True:
                try:
                    connection = await open_connection(self.connect)
                except Exception as exc:
                    # Like websockets, accept a process_exception that raises.
                    try:
                        new_exc = self._process_exception(exc)
                    except Exception as raised:
                        new_exc = raised
                    if new_exc is exc:
                        raise
                    if new_exc is not None:
                        raise new_exc from exc
                    if self._delays is None:
                        self._delays = backoff_delays(*self._backoff)
                    delay = next(self._delays)
                    self.logger.info(
                        "connect failed; reconnecting in %.1f seconds: %s",
                        delay,
                        traceback.format_exception_only(exc)[0].strip(),
                    )
                    await anyio.sleep(delay)
                    continue
                self._delays = None  # the handshake succeeded: start the backoff over
                self._pending = ConnectionAttempt(connection)
                return self._pending
        finally:
            self._busy = False

    async def aclose(self) -> None:
        """Close the last attempt's connection if it wasn't entered.

        Iterating may go on afterwards. Cancellation doesn't interrupt it.
        """
        attempt, self._pending = self._pending, None
        if attempt is not None:
            with anyio.CancelScope(shield=True):
                await attempt._abandon()
