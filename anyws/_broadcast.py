"""Sending one message to many connections: `broadcast`.

Strategy: the message is serialised once, as an unmasked frame without RSV
bits, and those same bytes are appended to the output buffer of every server
connection; the writers of the connections send them concurrently (on anyws'
asyncio transport, a connection with nothing waiting writes them at once). That is
why the message always goes out uncompressed: RFC 7692 lets a sender skip
compression per message (RSV1 clear), and an uncompressed message doesn't
touch the compression context, so every connection can take the same bytes.
Client connections must mask each frame with a fresh key, and connections
with an extension other than permessage-deflate must run it, so those get a
frame of their own.

`broadcast` never waits, so it can't apply backpressure; instead each
connection bounds what it buffers (see `broadcast` and
`anyws._connection.send_broadcast`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from ._connection import Connection, DataLike, is_fragmenting, send_broadcast
from .exceptions import ConcurrencyError
from .sansio import Frame, Opcode, Side, State
from .sansio._frames import serialize_frame
from .sansio.extensions import PerMessageDeflate


if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup  # type: ignore[import-not-found, unused-ignore]


__all__ = ["broadcast"]


def _takes_shared_frames(connection: Connection) -> bool:
    """Whether the connection can send a frame serialised for everyone, as is."""
    protocol = connection.protocol
    return protocol.side is Side.SERVER and all(
        isinstance(extension, PerMessageDeflate) for extension in protocol.extensions
    )


def broadcast(
    connections: Iterable[Connection],
    message: DataLike,
    *,
    text: bool | None = None,
    raise_exceptions: bool = False,
    drain_timeout: float | None = 10,
    max_buffer: int | None = 2**20,
) -> None:
    """Send a message to several connections at once, without waiting.

    A `str` is sent as a text frame, a bytes-like object as a binary frame;
    ``text=True`` sends bytes (already UTF-8) as text, ``text=False`` sends a
    `str` as binary. The message is framed once and the same bytes are queued
    on every server connection; it always goes out uncompressed, also on
    connections that negotiated permessage-deflate (RFC 7692 allows it), since
    compressing would mean framing it again for each connection.

    `broadcast` is a plain function: it queues the message and returns, and the
    connections' own tasks write it. It skips connections that aren't OPEN
    (closing or closed), and connections in the middle of sending a fragmented
    message (a broadcast can't go between its frames): those log a warning
    ``skipped broadcast: sending a fragmented message``, or, with
    ``raise_exceptions``, add a `ConcurrencyError` to the `ExceptionGroup` that
    `broadcast` raises once it has gone through every connection.

    One slow peer never holds back the others, and never makes a connection
    buffer without bound:

    - if a broadcast leaves more than the connection's ``write_limit`` bytes
      waiting to be written (a `serve` and `connect` argument, 32 KiB by
      default), the connection gets ``drain_timeout`` seconds to get back under
      ``write_limit``. If it doesn't, its write is interrupted and the
      connection is closed with 1013 (try again later) and reason
      ``slow consumer``, without waiting for the closing handshake: the peer,
      which isn't reading, only sees the connection drop.
    - if more than ``max_buffer`` bytes already wait when a broadcast comes, the
      message is dropped for that connection, which is closed with 1013 at once
      (a close frame is queued behind what waits, and the closing handshake
      gets ``close_timeout``).

    Either way, the handler sees `ConnectionClosedError` with ``sent.code ==
    1013``, and further broadcasts skip the connection. Code 1013 (rather than
    1008, policy violation, which is about what a peer *sent*) says the
    condition is temporary: a client that reconnects and reads faster is
    welcome.

    Args:
        connections: The connections, server or client side.
        message: The message.
        text: Force a text (``True``) or binary (``False``) frame.
        raise_exceptions: Raise an `ExceptionGroup` of the failures instead of
            logging them as warnings.
        drain_timeout: How long a connection may stay over its ``write_limit``
            after a broadcast, in seconds; ``None`` for no limit.
        max_buffer: How many bytes may already wait on a connection for a
            broadcast to queue one more message; ``None`` for no limit. At most
            this plus one message is buffered per connection. Make it hold a few
            of your largest messages.

    Raises:
        TypeError: ``message`` is neither a `str` nor bytes-like.
        ExceptionGroup: With ``raise_exceptions``, the `ConcurrencyError` of each
            connection skipped because of a fragmented message, and a
            `RuntimeError` ("failed to write message", with the error as
            ``__cause__``) for any other failure.
    """
    if isinstance(message, str):
        payload = message.encode()
        is_text = text is not False
    elif isinstance(message, bytes | bytearray | memoryview):
        payload = bytes(message)
        is_text = text is True
    else:
        raise TypeError("data must be str or bytes")
    opcode = Opcode.TEXT if is_text else Opcode.BINARY
    shared: bytes | None = None
    exceptions: list[Exception] = []

    for connection in connections:
        if connection.protocol.state is not State.OPEN:
            continue
        if is_fragmenting(connection):
            if raise_exceptions:
                exceptions.append(ConcurrencyError("sending a fragmented message"))
            else:
                connection.logger.warning("skipped broadcast: sending a fragmented message")
            continue
        frame: bytes | None = None
        if _takes_shared_frames(connection):
            if shared is None:
                shared = serialize_frame(opcode, payload)
            frame = shared
            if connection.debug:
                connection.logger.debug("> %s", Frame(opcode, payload))
        try:
            send_broadcast(
                connection,
                frame,
                payload,
                is_text,
                drain_timeout=drain_timeout,
                max_buffer=max_buffer,
            )
        except Exception as exc:
            if raise_exceptions:
                error = RuntimeError("failed to write message")
                error.__cause__ = exc
                exceptions.append(error)
            else:
                connection.logger.warning(
                    "skipped broadcast: failed to write message: %s",
                    f"{type(exc).__name__}: {exc}",
                )

    if exceptions:
        raise ExceptionGroup("skipped broadcast", exceptions)
