"""A connected anyws client and server over in-memory streams."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from .._client import ClientConnection, connect, open_connection
from .._connection import Running
from .._server import ServerConnection, accept_handshake, serve, serve_connection
from ..exceptions import InvalidHandshake
from ._streams import memory_stream_pair


__all__ = ["connection_pair"]


async def _no_handler(connection: ServerConnection) -> None:  # pragma: no cover
    raise AssertionError("unreachable")


class connection_pair:  # a context manager used like a function, as in anyws itself
    """Connect an anyws client and server without sockets.

    The opening handshake runs for real over a pair of in-memory streams (by
    default `memory_stream_pair`), then both connections run their background
    tasks in a task group that this context owns::

        async with anyws.testing.connection_pair() as (client, server):
            await client.send("hello")
            assert await server.recv() == "hello"

    With ``handler``, the server side runs it exactly as `anyws.serve` would
    (closing with 1000 when it returns, 1011 when it raises), which is how to
    test a handler::

        async with anyws.testing.connection_pair(handler=echo) as (client, _):
            await client.send("hello")
            assert await client.recv() == "hello"

    Leaving the block closes the client (a normal closing handshake), then
    waits for the server side, bounded by its ``close_timeout``. Enter and exit
    it in the same task.

    Args:
        handler: A handler for the server side, as for `anyws.serve`.
        streams: The client's and the server's stream, already connected, for
            example from `lockstep_stream_pair` or a stream pair that misbehaves.
        uri: The URI the client connects to (only its path and host matter).
        client_options: Keyword arguments for `anyws.connect`.
        server_options: Keyword arguments for `anyws.serve`.

    Raises:
        InvalidHandshake: The handshake failed (see ``server_options`` such as
            ``origins`` or ``process_request``).
    """

    def __init__(
        self,
        *,
        handler: Callable[[ServerConnection], Awaitable[None]] | None = None,
        streams: tuple[anyio.abc.AnyByteStream, anyio.abc.AnyByteStream] | None = None,
        uri: str = "ws://localhost/",
        client_options: Mapping[str, Any] | None = None,
        server_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._handler = handler
        self._streams = streams
        self._connect = connect(uri, stream=None, **dict(client_options or {}))
        self._serve = serve(handler or _no_handler, **dict(server_options or {}))
        self._client: Running | None = None
        self._server: Running | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._handler_done = anyio.Event()

    async def __aenter__(self) -> tuple[ClientConnection, ServerConnection]:
        client_stream, server_stream = self._streams or memory_stream_pair()
        self._connect.stream = client_stream
        client: ClientConnection | None = None
        server: ServerConnection | None = None
        errors: list[BaseException] = []

        async def open_client() -> None:
            nonlocal client
            try:
                client = await open_connection(self._connect, bounded=False)
            except Exception as exc:
                errors.append(exc)

        async def open_server() -> None:
            nonlocal server
            try:
                server = await accept_handshake(self._serve, server_stream)
            except Exception as exc:  # pragma: no cover - the handshake logs, not raises
                errors.append(exc)

        # Both sides at once: with a lockstep pair, neither may finish alone.
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(open_client)
            task_group.start_soon(open_server)
        if errors or client is None or server is None:
            await anyio.aclose_forcefully(client_stream)
            await anyio.aclose_forcefully(server_stream)
            if errors:
                raise errors[0]
            raise InvalidHandshake("the server refused the connection")

        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        if self._handler is not None:
            handler_done = self._handler_done = anyio.Event()

            async def run_handler(connection: ServerConnection) -> None:
                try:
                    await serve_connection(self._serve, connection)
                finally:
                    handler_done.set()

            task_group.start_soon(run_handler, server)
        else:
            # The body is the client's (entered below): a failing task of the
            # server's comes out when it ends.
            self._server = Running(server, cancel_body=False)
            await self._server.__aenter__()
        self._client = Running(client)
        await self._client.__aenter__()
        return client, server

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        assert task_group is not None
        assert self._client is not None
        try:
            await self._client.__aexit__(exc_type, exc, traceback)
        finally:
            try:
                if self._server is not None:
                    await self._server.__aexit__(None, None, None)
                else:
                    timeout = self._serve.close_timeout
                    with anyio.move_on_after(math.inf if timeout is None else timeout):
                        await self._handler_done.wait()
            finally:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
