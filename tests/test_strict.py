"""Strict conformance through real connections (issue 14).

When a valid message and a protocol violation arrive in the same read, anyws hands
the message to the application, lets it answer, and only then fails the connection:
the echo goes out before the close frame (what Autobahn's strict cases 3.2 to 3.4,
4.1.3 to 4.2.5 and 5.15 check). As a server and as a client, on every backend, over
TCP and TLS.
"""

from __future__ import annotations

import ssl

import anyio
import pytest

import anyws
from anyws.sansio import Close, Opcode

from .test_memory import ROLES, hostile_peer, transport  # noqa: F401 (a fixture)


TEXT, CONT, PING, PONG, CLOSE = Opcode.TEXT, Opcode.CONT, Opcode.PING, Opcode.PONG, Opcode.CLOSE


async def echo(websocket: anyws.Connection) -> None:
    try:
        async for message in websocket:
            await websocket.send(message)
    except anyws.ConnectionClosedError:
        pass


@pytest.mark.parametrize(
    ("violation", "reason"),
    [
        ((TEXT, b"bad", 2), "reserved bits must be 0"),  # 3.2
        ((0x3, b"", 0), "invalid opcode: 0x3"),  # 4.1.1
        ((CONT, b"none", 0), "unexpected continuation frame"),  # 5.15
    ],
    ids=["rsv", "opcode", "continuation"],
)
@pytest.mark.parametrize("role", ROLES)
async def test_message_before_a_violation_is_answered_first(
    role: str,
    transport: str,  # noqa: F811
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    violation: tuple[int, bytes, int],
    reason: str,
) -> None:
    async with hostile_peer(role, echo, transport, server_ssl_context, client_ssl_context) as peer:
        opcode, data, rsv = violation
        bad = bytearray(peer.frame(opcode, data))
        bad[0] |= rsv << 4
        # One write: the message, its ping, the violation, a ping that nobody answers.
        await peer.stream.send(
            peer.frame(TEXT, b"Hello, world!")
            + peer.frame(PING, b"1")
            + bytes(bad)
            + peer.frame(PING, b"2")
        )
        with anyio.fail_after(10):
            received = await peer.frames_until_close()
    assert [(frame.opcode, frame.data) for frame in received[:-1]] == [
        (PONG, b"1"),
        (TEXT, b"Hello, world!"),
    ]
    assert received[-1].opcode is CLOSE
    assert Close.parse(received[-1].data) == Close(1002, reason)
