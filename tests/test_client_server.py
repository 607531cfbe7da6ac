"""`connect` and `serve` end to end, over real TCP on 127.0.0.1, on every backend.

These tests assert what a user sees: exception types and messages, their ``__cause__``,
close codes, HTTP statuses and log records. Each test body runs under
``anyio.fail_after(TIMEOUT)`` so that a hang fails fast; tasks are synchronised with
events, never with sleeps.
"""

from __future__ import annotations

import base64
import functools
import logging
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSAttribute, TLSStream

from anyws import (
    ClientConnection,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidStatus,
    Request,
    Response,
    Server,
    ServerConnection,
    connect,
    serve,
)
from anyws.sansio._handshake import accept_key
from tests.conftest import MS


#: Bound on each test body, in seconds: a hang fails the test instead of the run.
TIMEOUT = 10_000 * MS

SERVER_LOGGER = "anyws.server"


def uri(server: Server, scheme: str = "ws", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{server.port}/"


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    """The server's log records whose message starts with ``message``."""
    return [
        record
        for record in caplog.records
        if record.name == SERVER_LOGGER and record.getMessage().startswith(message)
    ]


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """anyws log records at WARNING or above."""
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.name.startswith("anyws") and record.levelno >= logging.WARNING
    ]


def anyws_tasks() -> list[str]:
    return [
        task.name
        for task in anyio.get_running_tasks()
        if task.name is not None and task.name.startswith("anyws")
    ]


@asynccontextmanager
async def raw_server(
    handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server on 127.0.0.1 running ``handle`` per connection; yields the port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:

        async def run(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                try:
                    await handle(stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass  # the client went away

        tg.start_soon(listener.serve, run)
        yield port
        tg.cancel_scope.cancel()


async def read_request(stream: anyio.abc.SocketStream) -> bytes:
    """Read an HTTP request head."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


def switching_protocols(request: bytes) -> bytes:
    """The head of a 101 response accepting the handshake ``request``, by hand."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_key(key.decode()).encode()
        + b"\r\n\r\n"
    )


def reset_on_close(stream: anyio.abc.AnyByteStream) -> None:
    """Make closing ``stream`` abort the TCP connection with RST."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# Opening, echoing ------------------------------------------------------------


async def test_port_and_sockets() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            assert isinstance(server, Server)
            assert server.port > 0
            assert [address[:2] for address in server.sockets] == [("127.0.0.1", server.port)]


async def test_echo_text_and_binary() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            assert isinstance(ws, ClientConnection)
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"
            assert ws.response is not None
            assert ws.response.status_code == 101


async def test_echo_large_message() -> None:
    message = bytes(range(256)) * 4096  # 1 MiB
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, max_size=2**21) as server,
            connect(uri(server), max_size=2**21) as ws,
        ):
            await ws.send(message)
            assert await ws.recv() == message
            await ws.send(message + b"!")
            assert await ws.recv() == message + b"!"


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_message_over_max_size(compression: str | None) -> None:
    # Uncompressed, the size is known from the frame header; compressed, the
    # server stops inflating at the limit, so it can't say by how much.
    expected = {
        None: "message of 1048577 bytes exceeds limit of 1048576 bytes",
        "deflate": "message exceeds limit of 1048576 bytes",
    }[compression]
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, compression=compression) as server,
            connect(uri(server), compression=compression) as ws,
        ):
            await ws.send(b"x" * (2**20 + 1))
            with pytest.raises(ConnectionClosedError) as excinfo:
                await ws.recv()
            assert str(excinfo.value) == (
                f"received 1009 (message too big) {expected}; "
                f"then sent 1009 (message too big) {expected}"
            )


async def test_serve_method_with_task_group_start() -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            server = await tg.start(serve(echo, "127.0.0.1", 0).serve)
            assert isinstance(server, Server)
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
            # Closing the server ends serve_forever(), hence the task.
            await server.close()
        assert anyws_tasks() == []


async def test_serve_method_cancelled_closes_listeners() -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            server = await tg.start(serve(echo, "127.0.0.1", 0).serve)
            port = server.port
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
            tg.cancel_scope.cancel()
        assert anyws_tasks() == []
        try:
            # Nothing listens any more: connecting is refused.
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                pass
            else:
                await stream.aclose()
                pytest.fail("the server still listens")
        finally:
            # Don't leak the sockets into other tests as ResourceWarnings.
            for listener in server.listeners:
                await anyio.aclose_forcefully(listener)


async def test_server_logs_listening_address(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.port
    [record] = records(caplog, "server listening")
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"server listening on 127.0.0.1:{port}"


async def test_no_task_left_behind() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                assert anyws_tasks() != []  # the check below can see them
            assert ws.close_code == 1000
        assert anyws_tasks() == []


# Closing from the handler ----------------------------------------------------


async def test_handler_returns_closes_with_1000() -> None:
    async def handler(ws: ServerConnection) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosedOK) as excinfo:
                await ws.recv()
            # The server closes first; the client echoes its close frame.
            assert str(excinfo.value) == "received 1000 (OK); then sent 1000 (OK)"
            assert excinfo.value.rcvd_then_sent is True
            assert ws.close_code == 1000


async def test_handler_raises_closes_with_1011_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    async def handler(ws: ServerConnection) -> None:
        raise ZeroDivisionError("oops")

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosedError) as excinfo:
                await ws.recv()
            assert str(excinfo.value) == (
                "received 1011 (internal error); then sent 1011 (internal error)"
            )
    [record] = records(caplog, "connection handler failed")
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "connection handler failed"
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError
    assert str(record.exc_info[1]) == "oops"


async def test_handler_connection_closed_logged_once_at_debug(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest, anyio_backend: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    received = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        received.set()
        await ws.recv()  # the client vanishes: ConnectionClosedError

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            await ws.send("hello")
            await received.wait()
            # The client vanishes without a closing handshake.
            reset_on_close(ws.transport)
            await anyio.aclose_forcefully(ws.transport)
    [record] = records(caplog, "connection closed:")
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "connection closed: no close frame received or sent"
    assert record.exc_info is None
    assert problems(caplog) == []


# Closing the server ----------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "exit"])
async def test_server_close_closes_connections_with_1001(how: str) -> None:
    handler_done = anyio.Event()
    opened = anyio.Event()
    closed: list[ConnectionClosed] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await ws.wait_closed()
        finally:
            handler_done.set()

    async def client(server: Server) -> None:
        async with connect(uri(server)) as ws:
            await ws.send("hi")
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                closed.append(exc)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            async with serve(handler, "127.0.0.1", 0) as server:
                tg.start_soon(client, server)
                await opened.wait()
                assert len(server.connections) == 1
                if how == "close":
                    await server.close()
                    # close() waited for the handler.
                    assert handler_done.is_set()
                    assert server.connections == set()
            assert handler_done.is_set()
    [exc] = closed
    assert type(exc) is ConnectionClosedOK
    assert exc.rcvd is not None
    assert exc.rcvd.code == 1001
    assert str(exc) == "received 1001 (going away); then sent 1001 (going away)"


async def test_server_close_cancels_handler_after_close_timeout() -> None:
    close_timeout = 100 * MS
    opened = anyio.Event()
    outcome: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        try:
            await anyio.sleep_forever()  # ignores the close
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(handler, "127.0.0.1", 0, close_timeout=close_timeout) as server,
            connect(uri(server)) as ws,
        ):
            await opened.wait()
            start = anyio.current_time()
            await server.close()
            elapsed = anyio.current_time() - start
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001
    assert outcome == ["cancelled"]
    assert close_timeout * 0.9 <= elapsed < close_timeout + 2000 * MS


# process_request, process_response -----------------------------------------------


async def test_process_request_health_check() -> None:
    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return ws.respond(200, "OK\n")
        return None

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/healthz"):
                    pytest.fail("the handshake succeeded")
            exc = excinfo.value
            assert str(exc) == "server rejected WebSocket connection: HTTP 200"
            assert exc.response.status_code == 200
            assert exc.response.body == b"OK\n"
            # Any other path proceeds.
            async with connect(uri(server)) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_respond_with_headers() -> None:
    """respond(headers=...) replaces Content-Type (once on the wire) and adds the others."""

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        return ws.respond(
            200,
            "<p>hi</p>\n",
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(uri(server)):
                    pytest.fail("the handshake succeeded")
    response = excinfo.value.response
    assert response.status_code == 200
    assert response.body == b"<p>hi</p>\n"
    assert response.headers.get_all("Content-Type") == ["text/html; charset=utf-8"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Connection"] == "close"


async def test_async_process_request() -> None:
    async def process_request(ws: ServerConnection, request: Request) -> Response | None:
        await anyio.lowlevel.checkpoint()
        if "X-Token" not in request.headers:
            return ws.respond(401, "Who are you?\n")
        return None

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(uri(server)):
                    pytest.fail("the handshake succeeded")
            assert excinfo.value.response.status_code == 401
            assert excinfo.value.response.body == b"Who are you?\n"
            async with connect(uri(server), additional_headers={"X-Token": "t"}) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_process_response_adds_header() -> None:
    def process_response(ws: ServerConnection, request: Request, response: Response) -> None:
        response.headers["X-Served-By"] = "test"

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, process_response=process_response) as server,
            connect(uri(server)) as ws,
        ):
            assert ws.response is not None
            assert ws.response.headers["X-Served-By"] == "test"
            await ws.send("hello")
            assert await ws.recv() == "hello"


async def test_process_request_raises_gives_500_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        raise KeyError("oops")

    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(uri(server)):
                    pytest.fail("the handshake succeeded")
    assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 500"
    assert excinfo.value.response.body == (
        b"Failed to open a WebSocket connection.\nSee server log for more information.\n"
    )
    [record] = records(caplog, "opening handshake failed")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


async def test_basic_auth_credentials_in_uri() -> None:
    authorizations: list[str | None] = []

    def process_request(ws: ServerConnection, request: Request) -> None:
        authorizations.append(request.headers.get("Authorization"))

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, process_request=process_request) as server,
            connect(f"ws://user:pass@127.0.0.1:{server.port}/") as ws,
        ):
            await ws.send("hello")
            assert await ws.recv() == "hello"
    assert authorizations == ["Basic " + base64.b64encode(b"user:pass").decode()]


# Origins, subprotocols -------------------------------------------------------------


async def test_origins() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(echo, "127.0.0.1", 0, origins=["http://good"]) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(uri(server), origin="http://bad"):
                    pytest.fail("the handshake succeeded")
            assert excinfo.value.response.status_code == 403
            assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 403"
            async with connect(uri(server), origin="http://good") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"


async def test_subprotocol_negotiation() -> None:
    selected: list[str | None] = []

    async def handler(ws: ServerConnection) -> None:
        selected.append(ws.subprotocol)

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0, subprotocols=["chat", "superchat"]) as server:
            # The server's preference wins.
            async with connect(uri(server), subprotocols=["superchat", "chat"]) as ws:
                assert ws.subprotocol == "chat"
            async with connect(uri(server), subprotocols=["other"]) as ws:
                assert ws.subprotocol is None
            async with connect(uri(server)) as ws:
                assert ws.subprotocol is None
    assert selected == ["chat", None, None]


async def test_select_subprotocol() -> None:
    offers: list[list[str]] = []

    def select_subprotocol(connection: ServerConnection, offered: Any) -> str | None:
        # websockets' signature: the connection first, with the request on it.
        assert connection.request is not None
        assert connection.request.headers["Sec-WebSocket-Protocol"] == "a, b"
        offers.append(list(offered))
        return offered[-1] if offered else None

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(
                echo, "127.0.0.1", 0, subprotocols=["a"], select_subprotocol=select_subprotocol
            ) as server,
            connect(uri(server), subprotocols=["a", "b"]) as ws,
        ):
            assert ws.subprotocol == "b"
    assert offers == [["a", "b"]]


# create_connection ------------------------------------------------------------------


class MyClientConnection(ClientConnection):
    def __init__(self, *args: Any, extra: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = extra


class MyServerConnection(ServerConnection):
    def __init__(self, *args: Any, extra: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = extra


async def test_create_connection() -> None:
    seen: list[tuple[type, int]] = []

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, MyServerConnection)
        seen.append((type(ws), ws.extra))
        await echo(ws)

    with anyio.fail_after(TIMEOUT):
        async with (
            serve(
                handler,
                "127.0.0.1",
                0,
                create_connection=functools.partial(MyServerConnection, extra=42),
            ) as server,
            connect(
                uri(server), create_connection=functools.partial(MyClientConnection, extra=42)
            ) as ws,
        ):
            assert type(ws) is MyClientConnection
            assert ws.extra == 42
            await ws.send("hello")
            assert await ws.recv() == "hello"
    assert seen == [(MyServerConnection, 42)]


# Exceptions stay plain ------------------------------------------------------------


async def test_connect_body_raises_plain_exception() -> None:
    closed: list[ConnectionClosed] = []
    handler_done = anyio.Event()

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            closed.append(exc)
        handler_done.set()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server:
            with pytest.raises(ValueError) as excinfo:
                async with connect(uri(server)) as ws:
                    raise ValueError("boom")
            assert type(excinfo.value) is ValueError
            assert str(excinfo.value) == "boom"
            assert ws.close_code == 1011
            await handler_done.wait()
    [exc] = closed
    assert type(exc) is ConnectionClosedError
    assert str(exc) == "received 1011 (internal error); then sent 1011 (internal error)"


async def test_serve_body_raises_plain_exception() -> None:
    closed: list[ConnectionClosed] = []
    opened = anyio.Event()

    async def client(server: Server) -> None:
        async with connect(uri(server)) as ws:
            opened.set()
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                closed.append(exc)

    async def run_server(tg: anyio.abc.TaskGroup) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            tg.start_soon(client, server)
            await opened.wait()
            raise ValueError("boom")

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            with pytest.raises(ValueError) as excinfo:
                await run_server(tg)
    assert type(excinfo.value) is ValueError
    assert str(excinfo.value) == "boom"
    # Leaving serve() closes the connections with 1001, as documented.
    [exc] = closed
    assert type(exc) is ConnectionClosedOK
    assert str(exc) == "received 1001 (going away); then sent 1001 (going away)"
    assert anyws_tasks() == []


# Failures to connect ----------------------------------------------------------------


async def test_connection_refused() -> None:
    # A bound socket that doesn't listen: connecting to its port is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with anyio.fail_after(TIMEOUT), pytest.raises(OSError) as excinfo:
            async with connect(f"ws://127.0.0.1:{port}/"):
                pytest.fail("connected")
    # anyio's connect_tcp tries every address, then raises a plain OSError.
    assert type(excinfo.value) is OSError
    assert str(excinfo.value) == "All connection attempts failed"
    assert isinstance(excinfo.value.__cause__, ConnectionRefusedError)


async def test_open_timeout() -> None:
    done = anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        await done.wait()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(silent) as port:
            start = anyio.current_time()
            with pytest.raises(TimeoutError, match=r"^timed out during opening handshake$"):
                async with connect(f"ws://127.0.0.1:{port}/", open_timeout=200 * MS):
                    pytest.fail("connected")
            elapsed = anyio.current_time() - start
            done.set()
    assert elapsed >= 200 * MS * 0.9


async def test_garbage_response() -> None:
    async def garbage(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"this is not HTTP\r\n\r\n")

    with anyio.fail_after(TIMEOUT):
        async with raw_server(garbage) as port:
            with pytest.raises(InvalidMessage) as excinfo:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pytest.fail("connected")
    assert str(excinfo.value) == "did not receive a valid HTTP response"
    cause = excinfo.value.__cause__
    assert type(cause) is InvalidMessage
    assert str(cause) == "invalid HTTP status line: b'this is not HTTP'"


async def test_server_closes_during_handshake() -> None:
    async def close_at_once(stream: anyio.abc.SocketStream) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with raw_server(close_at_once) as port:
            with pytest.raises(InvalidMessage) as excinfo:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pytest.fail("connected")
    assert str(excinfo.value) == "did not receive a valid HTTP response"
    cause = excinfo.value.__cause__
    assert type(cause) is EOFError
    assert str(cause) == "connection closed while reading HTTP status line"


async def test_http_404() -> None:
    async def not_found(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 10\r\n\r\nno such ws"
        )
        await stream.receive()  # until the client closes

    with anyio.fail_after(TIMEOUT):
        async with raw_server(not_found) as port:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pytest.fail("connected")
    assert str(excinfo.value) == "server rejected WebSocket connection: HTTP 404"
    assert excinfo.value.response.status_code == 404
    assert excinfo.value.response.reason_phrase == "Not Found"
    assert excinfo.value.response.body == b"no such ws"


# Lost TCP connections ----------------------------------------------------------------


async def test_tcp_reset_by_server(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest, anyio_backend: Any
) -> None:

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        reset_on_close(ws.transport)
        await anyio.aclose_forcefully(ws.transport)

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError) as excinfo:
                await ws.recv()
    assert str(excinfo.value) == "no close frame received or sent"
    cause = excinfo.value.__cause__
    assert isinstance(cause, OSError), repr(cause)
    if sys.platform == "linux":
        assert isinstance(cause, ConnectionResetError), repr(cause)
    assert problems(caplog) == []


async def test_tcp_closed_by_server_without_close_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.transport.aclose()

    with anyio.fail_after(TIMEOUT):
        async with serve(handler, "127.0.0.1", 0) as server, connect(uri(server)) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError) as excinfo:
                await ws.recv()
    assert str(excinfo.value) == "no close frame received or sent"
    assert type(excinfo.value.__cause__) is EOFError
    assert str(excinfo.value.__cause__) == "unexpected end of stream"
    assert problems(caplog) == []


# TLS ------------------------------------------------------------------------------------


async def test_wss_echo(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server,
            connect(uri(server, "wss", "localhost"), ssl=client_ssl_context) as ws,
        ):
            assert ws.transport.extra(TLSAttribute.ssl_object) is not None
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00" * 100_000)
            assert await ws.recv() == b"\x00" * 100_000
        assert ws.close_code == 1000


async def test_wss_untrusted_certificate(server_ssl_context: ssl.SSLContext) -> None:
    # A raw TLS server, so that this test doesn't depend on how serve() copes.
    async def tls(stream: anyio.abc.SocketStream) -> None:
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
            await TLSStream.wrap(
                stream, server_side=True, ssl_context=server_ssl_context, standard_compatible=False
            )

    with anyio.fail_after(TIMEOUT):
        async with raw_server(tls) as port:
            # The default context trusts the system's CAs, not the test CA.
            with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
                async with connect(f"wss://localhost:{port}/"):
                    pytest.fail("connected")
    assert isinstance(excinfo.value, OSError)
    assert excinfo.value.verify_message == "unable to get local issuer certificate"
    assert excinfo.value.__cause__ is None


async def test_wss_server_closes_during_tls_handshake() -> None:
    async def close_after_client_hello(stream: anyio.abc.SocketStream) -> None:
        # Read the ClientHello first: closing with unread data would send RST, not FIN.
        await stream.receive()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(close_after_client_hello) as port:
            # Documented: OSError when the connection fails, ssl.SSLError for TLS.
            with pytest.raises(OSError):
                async with connect(f"wss://localhost:{port}/"):
                    pytest.fail("connected")


async def test_tls_handshake_failure_does_not_crash_server(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    handled = anyio.Event()

    class OnTLSFailure(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("TLS handshake failed"):
                handled.set()

    on_tls_failure = OnTLSFailure()
    logging.getLogger(SERVER_LOGGER).addHandler(on_tls_failure)
    server = serve(echo, "127.0.0.1", 0, ssl=server_ssl_context)
    try:
        with anyio.fail_after(TIMEOUT):
            async with server as running:
                with pytest.raises(ssl.SSLCertVerificationError):
                    async with connect(uri(running, "wss", "localhost")):
                        pytest.fail("connected")
                # Wait until the server handled the failed handshake...
                await handled.wait()
                # ... and still serves.
                async with connect(uri(running, "wss", "localhost"), ssl=client_ssl_context) as ws:
                    await ws.send("hello")
                    assert await ws.recv() == "hello"
    finally:
        logging.getLogger(SERVER_LOGGER).removeHandler(on_tls_failure)
        # The crash skips closing the listeners (see the test above): don't leak them.
        for listener in server.server.listeners:
            await anyio.aclose_forcefully(listener)


def test_ssl_with_ws_uri(client_ssl_context: ssl.SSLContext) -> None:
    with pytest.raises(ValueError) as excinfo:
        connect("ws://127.0.0.1:1/", ssl=client_ssl_context)
    assert str(excinfo.value) == "connect() received an ssl argument for a ws:// URI"


async def test_frames_in_the_handshake_read_are_answered_at_once() -> None:
    """A server that sends a ping and a close frame in the same write as its 101
    (Autobahn does) gets the pong and the close echo without sending anything more."""
    answer = anyio.Event()
    got = bytearray()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await stream.send(
            switching_protocols(await read_request(stream))
            + b"\x89\x02hi"  # PING "hi"
            + b"\x88\x02\x03\xe8"  # CLOSE 1000
        )
        # Wait for both answers (masked: 2 + 4 + 2 bytes, then 2 + 4 + 2 bytes).
        while len(got) < 16:
            got.extend(await stream.receive())
        answer.set()

    with anyio.fail_after(TIMEOUT):
        async with raw_server(handle) as port:
            async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
            await answer.wait()
    pong, close = bytes(got[:8]), bytes(got[8:16])
    assert pong[:2] == b"\x8a\x82"
    assert bytes(b ^ pong[2 + i % 4] for i, b in enumerate(pong[6:])) == b"hi"
    assert close[:2] == b"\x88\x82"
    assert bytes(b ^ close[2 + i % 4] for i, b in enumerate(close[6:])) == b"\x03\xe8"
