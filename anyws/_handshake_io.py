"""The opening handshake's I/O, before a connection's background tasks start.

The client and the server run the handshake from their own task: they write the
request or the response with `write_output` and read the other side's with
`receive_message`, through the connection's engine. Frames that arrive in the
same read as the handshake message are queued for `recv` in the connection's
inbox. Transport errors end the protocol (as an end of stream) and are kept by
the engine (``engine.transport_exc``); nothing here raises them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._engine import TRANSPORT_ERRORS
from .sansio import Frame, State


if TYPE_CHECKING:
    from ._engine import TaskEngine
    from ._messages import Inbox
    from .sansio import Protocol, Request, Response


__all__ = ["receive_message", "write_output"]


async def write_output(protocol: Protocol, engine: TaskEngine) -> None:
    """Write the protocol's output from the current task.

    A transport error ends the protocol, as an end of stream would.
    """
    if not await engine.write_direct(protocol.data_to_send()):
        protocol.receive_eof()
        protocol.data_to_send()


async def receive_message(
    protocol: Protocol, engine: TaskEngine, inbox: Inbox
) -> Request | Response | None:
    """Read until the protocol parses the handshake request or response.

    Frames that arrive in the same read are queued in ``inbox``. Returns
    ``None`` when the handshake failed or the stream ended first.
    """
    while True:
        events = protocol.events_received()
        for index, event in enumerate(events):
            if not isinstance(event, Frame):
                inbox.put(events[index + 1 :])
                return event
        if protocol.handshake_exc is not None or protocol.state is State.CLOSED:
            return None
        try:
            data = await engine.receive()
        except anyio.EndOfStream:
            protocol.receive_eof()
        except TRANSPORT_ERRORS as exc:
            engine.record_error(exc)
            protocol.receive_eof()
        else:
            protocol.receive_data(data, max_messages=inbox.room)
