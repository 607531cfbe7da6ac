"""Sockets made elsewhere: a listening socket for `serve`, a connected one for `connect`.

A server may be handed its listening socket instead of binding one: by a parent
process that binds once and forks workers (each inherits it), by systemd socket
activation, by a supervisor. A client may be handed a socket that something else
connected. anyio wraps both (``from_socket``); on asyncio, TCP connections then run on
anyws' own transport as usual (see ``_asyncio.py``).
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import anyio.abc

from ._asyncio import AsyncioStream, running_loop


__all__ = ["listener_from_socket", "stream_from_socket"]


def _check_stream_socket(sock: socket.socket, function: str) -> None:
    if not isinstance(sock, socket.socket):
        raise TypeError(f"{function}() expected a socket for sock, got {type(sock).__name__}")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"{function}() needs a SOCK_STREAM socket, got {sock.type!r}")


async def listener_from_socket(sock: socket.socket, backlog: int) -> anyio.abc.Listener[Any]:
    """Listen on ``sock``, a bound TCP or Unix socket, which the listener then owns.

    A socket that isn't listening yet starts listening with ``backlog``; one that is
    keeps the backlog it was given.

    Raises:
        TypeError: ``sock`` isn't a socket.
        ValueError: ``sock`` isn't a stream socket, or isn't bound.
        OSError: ``listen()`` failed.
    """
    _check_stream_socket(sock, "serve")
    try:
        address = sock.getsockname()
    except OSError as exc:  # closed
        raise ValueError("serve() needs a bound socket for sock") from exc
    if not (address[1] if sock.family in (socket.AF_INET, socket.AF_INET6) else address):
        raise ValueError("serve() needs a bound socket for sock")
    listening = getattr(socket, "SO_ACCEPTCONN", None)
    if listening is None or not sock.getsockopt(socket.SOL_SOCKET, listening):
        sock.listen(backlog)
    sock.setblocking(False)
    return await anyio.abc.SocketListener.from_socket(sock)


async def stream_from_socket(sock: socket.socket) -> anyio.abc.ByteStream:
    """Run a byte stream on ``sock``, a connected TCP or Unix socket, which it then owns.

    On asyncio, a TCP socket gets anyws' own transport.

    Raises:
        TypeError: ``sock`` isn't a socket.
        ValueError: ``sock`` isn't a stream socket, or isn't connected.
        OSError: The event loop couldn't take the socket.
    """
    _check_stream_socket(sock, "connect")
    try:
        sock.getpeername()
    except OSError as exc:
        raise ValueError("connect() needs a connected socket for sock") from exc
    sock.setblocking(False)
    if running_loop() is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await AsyncioStream.from_socket(sock)
    if sock.family == getattr(socket, "AF_UNIX", None):
        return await anyio.abc.UNIXSocketStream.from_socket(sock)
    return await anyio.abc.SocketStream.from_socket(sock)
