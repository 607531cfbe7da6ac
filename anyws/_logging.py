"""Naming the connection in its debug log lines: `ConnectionLogger`.

Strategy: when a connection's logger is enabled for DEBUG as the connection
opens (the frame logs are on), the connection wraps it, and its protocol's, in
a `logging.LoggerAdapter` that starts every trace line (a frame, a handshake
line, a state change, a keepalive ping: the DEBUG lines that start with ``<``,
``>``, ``=``, ``%``, ``!``, ``-`` or ``x``) with the connection's short id
(the first 8 hex digits of `Connection.id`), so that the frame logs of a
server's many connections can be told apart, and adds the connection to every
record as ``record.websocket`` (websockets' name) for formatters and filters.
Other lines keep their text. Without DEBUG, nothing is wrapped: the adapter
costs nothing on connections that don't log frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from ._connection import Connection
    from .sansio._protocol import LoggerLike

    _Base = logging.LoggerAdapter[Any]
else:
    _Base = logging.LoggerAdapter


__all__ = ["TRACE_PREFIXES", "ConnectionLogger", "short_id"]

#: The starts of the trace lines (frames, handshake, state, keepalive, errors,
#: timeouts), which get the connection's name; other lines keep their text.
TRACE_PREFIXES = frozenset({"< ", "> ", "= ", "% ", "! ", "- ", "x "})


def short_id(connection: Connection) -> str:
    """The connection's name in its log lines."""
    return connection.id.hex[:8]


class ConnectionLogger(_Base):
    """Prefixes DEBUG lines with the connection's short id; adds ``websocket`` to records."""

    def __init__(self, logger: LoggerLike, connection: Connection) -> None:
        super().__init__(logger, {"websocket": connection})
        self.prefix = short_id(connection)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra: Mapping[str, object] | None = kwargs.get("extra")
        kwargs["extra"] = self.extra if extra is None else {**(self.extra or {}), **extra}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level == logging.DEBUG and msg[:2] in TRACE_PREFIXES:
            msg = f"{self.prefix} {msg}"
        super().log(level, msg, *args, **kwargs)
