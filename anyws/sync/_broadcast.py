"""The sync `broadcast`: `anyws.broadcast` for connections of the blocking API."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable

from .._broadcast import broadcast as async_broadcast
from .._connection import Connection as AsyncConnection, DataLike
from ._connection import Connection, EventLoopThread


if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup  # type: ignore[import-not-found, unused-ignore]


__all__ = ["broadcast"]


def broadcast(
    connections: Iterable[Connection],
    message: DataLike,
    *,
    text: bool | None = None,
    raise_exceptions: bool = False,
    drain_timeout: float | None = 10,
    max_buffer: int | None = 2**20,
) -> None:
    """Send a message to several connections at once, without waiting for them.

    The blocking face of `anyws.broadcast`, with the same arguments and the same
    guarantees: the message is queued on every OPEN connection (framed once for
    the server connections of one event loop) and written by the connections'
    own tasks; a slow peer is closed with 1013 rather than hold up the others.
    It returns once the message is queued, which takes one round trip to each
    event loop involved (one for all the connections of a server).

    Args:
        connections: Connections of `~anyws.sync.serve` or `~anyws.sync.connect`.
        message, text, raise_exceptions, drain_timeout, max_buffer: As for
            `anyws.broadcast`.

    Raises:
        TypeError: ``message`` is neither a `str` nor bytes-like.
        ExceptionGroup: With ``raise_exceptions``, the failures of every
            connection, as `anyws.broadcast` gives them.
        RuntimeError: Called from the event loop thread of one of the connections.
    """
    if not isinstance(message, str | bytes | bytearray | memoryview):
        raise TypeError("data must be str or bytes")
    loops: dict[EventLoopThread, list[AsyncConnection]] = {}
    for connection in connections:
        loops.setdefault(connection._loop, []).append(connection.async_connection)
    for loop in loops:
        loop.check_thread("broadcast")
    exceptions: list[Exception] = []
    for loop, async_connections in loops.items():
        if loop.stopped:
            continue  # the connections are closed: broadcast skips them anyway
        send = functools.partial(
            async_broadcast,
            async_connections,
            message,
            text=text,
            raise_exceptions=raise_exceptions,
            drain_timeout=drain_timeout,
            max_buffer=max_buffer,
        )
        try:
            loop.portal.call(send)
        except ExceptionGroup as group:
            exceptions.extend(group.exceptions)
        except RuntimeError:
            if not loop.stopped:  # else the loop stopped meanwhile: closed connections
                raise
    if exceptions:
        raise ExceptionGroup("skipped broadcast", exceptions)
