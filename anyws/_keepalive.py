"""Pings, pongs and the keepalive: one state machine, driven by an engine's timer.

`Pings` owns the pings sent and not yet answered: the waiters that
`Connection.ping` returns (`PongWaiter`), the matching of a pong with the ping it
answers and every ping before it (RFC 6455, section 5.5.3), the latency, and the
keepalive: a ping every ``ping_interval`` seconds, and failing the connection when
its pong doesn't come within ``ping_timeout``.

It never does I/O and never waits. It sends keepalive pings and fails the
connection through the connection's `~anyws._engine.Link` methods; the engine
gives it a clock and a `Timer` (the event loop's timers on anyws' asyncio
transport, a task elsewhere). Its timer callbacks call nothing that needs anyio to
know the running event loop: on asyncio they run outside any task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .exceptions import ConcurrencyError


if TYPE_CHECKING:
    from ._engine import Link
    from .exceptions import ConnectionClosed


__all__ = ["Pings", "PongWaiter", "Timer"]


class Timer(Protocol):
    """One pending callback at most, on an engine's clock."""

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` ``delay`` seconds from now, instead of what was scheduled."""

    def cancel(self) -> None:
        """Forget the scheduled callback, if any."""


class PongWaiter:
    """What `Connection.ping` returns: await it for the round-trip time in seconds."""

    __slots__ = ("_closed_exc", "_event", "_latency")

    def __init__(self, closed_exc: Callable[[], ConnectionClosed]) -> None:
        self._closed_exc = closed_exc
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
            raise self._closed_exc()
        return self._latency

    def __await__(self) -> Generator[Any, None, float]:
        return self.wait().__await__()

    def _resolve(self, latency: float | None) -> None:
        self._latency = latency
        self._event.set()


class Pings:
    """The pings waiting for a pong, and the keepalive.

    Args:
        link: The connection: its ``_send_keepalive_ping(payload)`` sends a ping
            (queues it whole, never waits), its ``_keepalive_timed_out()`` fails
            it after a keepalive timeout.
        clock: The engine's clock.
        timer: The engine's timer, for the keepalive.
        ping_interval: Seconds between keepalive pings; ``None``: no keepalive.
        ping_timeout: Seconds to wait for a keepalive pong; ``None``: forever.
    """

    __slots__ = (
        "_clock",
        "_keepalive_payload",
        "_link",
        "_pending",
        "_timer",
        "ping_interval",
        "ping_timeout",
    )

    def __init__(
        self,
        link: Link,
        clock: Callable[[], float],
        timer: Timer,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
    ) -> None:
        self._link = link
        self._clock = clock
        self._timer = timer
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        # The waiter is None for the keepalive's pings.
        self._pending: dict[bytes, tuple[PongWaiter | None, float]] = {}
        self._keepalive_payload: bytes | None = None

    def new_payload(self, data: bytes | None) -> bytes:
        """The payload of a new ping: ``data``, or four random bytes not in use.

        Raises:
            ConcurrencyError: A ping with the same payload waits for its pong.
        """
        if data is None:
            payload = os.urandom(4)
            while payload in self._pending:
                payload = os.urandom(4)
            return payload
        if data in self._pending:
            raise ConcurrencyError("already waiting for a pong with the same data")
        return data

    def sent(self, payload: bytes, waiter: PongWaiter | None) -> None:
        """Register a ping just sent."""
        self._pending[payload] = (waiter, self._clock())

    def received(self, data: bytes) -> float | None:
        """Resolve the pings that a pong with ``data`` answers; return its latency.

        ``None`` when it answers no ping (an unsolicited pong).
        """
        pending = self._pending
        if data not in pending:
            return None
        now = self._clock()
        keepalive = False
        latency = 0.0
        # A pong acknowledges the ping it matches and every ping sent before it.
        for payload in list(pending):
            waiter, sent_at = pending.pop(payload)
            if waiter is not None:
                waiter._resolve(now - sent_at)
            keepalive = keepalive or payload == self._keepalive_payload
            if payload == data:
                latency = now - sent_at
                break
        if keepalive:
            self._keepalive_answered()
        return latency

    def close(self) -> None:
        """The connection closed: wake every waiter (they raise) and stop the keepalive."""
        for waiter, _ in self._pending.values():
            if waiter is not None:
                waiter._resolve(None)
        self._pending.clear()
        self._timer.cancel()

    # The keepalive ---------------------------------------------------------

    def start_keepalive(self) -> None:
        """Schedule the first keepalive ping, if there's a ``ping_interval``."""
        if self.ping_interval is not None:
            self._timer.schedule(self.ping_interval, self._keepalive_ping)

    def _keepalive_ping(self) -> None:
        assert self.ping_interval is not None
        payload = self.new_payload(None)
        if not self._link._send_keepalive_ping(payload):
            return  # the connection isn't open anymore
        self.sent(payload, None)
        self._keepalive_payload = payload
        if self._link.debug:
            self._link.logger.debug("% sent keepalive ping")
        if self.ping_timeout is None:
            self._timer.schedule(self.ping_interval, self._keepalive_ping)
        else:
            self._timer.schedule(self.ping_timeout, self._keepalive_timed_out)

    def _keepalive_answered(self) -> None:
        """The keepalive ping was answered: ping again ``ping_interval`` later."""
        assert self.ping_interval is not None
        self._keepalive_payload = None
        if self.ping_timeout is None:
            return  # the next ping is due already
        if self._link.debug:
            self._link.logger.debug("% received keepalive pong")
        self._timer.schedule(self.ping_interval, self._keepalive_ping)

    def _keepalive_timed_out(self) -> None:
        if self._link.debug:
            self._link.logger.debug("- timed out waiting for keepalive pong")
        self._link._keepalive_timed_out()
