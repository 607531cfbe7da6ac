"""`route`: dispatching connections on the request path.

`match_route` is a pure function, tested on its own; `route` runs over real TCP on
127.0.0.1 on every backend.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from anyws import (
    InvalidStatus,
    Request,
    Response,
    Server,
    ServerConnection,
    basic_auth,
    connect,
    route,
)
from anyws._routing import match_route
from anyws.sansio._headers import build_authorization_basic
from tests.conftest import MS


TIMEOUT = 10_000 * MS


async def chat(connection: ServerConnection) -> None:
    await connection.send("chat")


async def room(connection: ServerConnection, room: str) -> None:
    await connection.send(f"room {room}")


async def member(connection: ServerConnection, room: str, user: str) -> None:
    await connection.send(f"room {room} user {user}")


async def lobby(connection: ServerConnection) -> None:
    await connection.send("lobby")


ROUTES: dict[str, Any] = {
    "/": chat,
    "/chat": chat,
    "/rooms/{room}": room,
    "/rooms/{room}/users/{user}": member,
    "/rooms/lobby": lobby,
}


# match_route ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", (chat, {})),
        ("/chat", (chat, {})),
        ("/chat?token=1&x=/y", (chat, {})),
        ("/ch%61t", (chat, {})),
        ("/rooms/red", (room, {"room": "red"})),
        ("/rooms/red?x=1", (room, {"room": "red"})),
        ("/rooms/a%20b", (room, {"room": "a b"})),
        ("/rooms/caf%C3%A9", (room, {"room": "café"})),
        ("/rooms/a%2Fb", (room, {"room": "a/b"})),
        ("/rooms/%7Broom%7D", (room, {"room": "{room}"})),
        ("/rooms/red/users/bob", (member, {"room": "red", "user": "bob"})),
        ("/rooms/lobby", (lobby, {})),  # exact wins, though the pattern comes first
        ("/rooms/lobby/users/bob", (member, {"room": "lobby", "user": "bob"})),
    ],
)
def test_match(path: str, expected: tuple[Any, dict[str, str]]) -> None:
    assert match_route(ROUTES, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/chat/",  # a trailing slash is significant
        "/Chat",
        "/chats",
        "/rooms",
        "/rooms/",  # a parameter is never empty
        "/rooms//users/bob",
        "/rooms/red/",
        "/rooms/red/users",
        "/rooms/red/users/bob/x",
        "/rooms/%FF",  # not UTF-8
        "*",
        "http://example.com/chat",
        "/chat%2F",
    ],
)
def test_no_match(path: str) -> None:
    assert match_route(ROUTES, path) is None


def test_patterns_tried_in_order() -> None:
    first: dict[str, Any] = {"/{a}/x": chat, "/y/{b}": room}
    assert match_route(first, "/y/x") == (chat, {"a": "y"})
    second: dict[str, Any] = {"/y/{b}": room, "/{a}/x": chat}
    assert match_route(second, "/y/x") == (room, {"b": "x"})


def test_empty_routes() -> None:
    assert match_route({}, "/") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("chat", "path must start with /: 'chat'"),
        ("", "path must start with /: ''"),
        ("/rooms/x{room}", "a parameter must be a whole segment, as in /rooms/{room}: "),
        ("/rooms/{room", "a parameter must be a whole segment, as in /rooms/{room}: "),
        ("/rooms/{1room}", "a parameter must be a whole segment, as in /rooms/{room}: "),
        ("/rooms/{}", "a parameter must be a whole segment, as in /rooms/{room}: "),
        ("/{a}/{a}", "duplicate parameter {a} in '/{a}/{a}'"),
    ],
)
def test_invalid_pattern(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        route({pattern: chat})
    assert str(excinfo.value).startswith(message)
    with pytest.raises(ValueError):
        match_route({pattern: chat}, "/")


# route, end to end ----------------------------------------------------------------


async def receive(server: Server, path: str, **kwargs: Any) -> str:
    async with connect(f"ws://127.0.0.1:{server.port}{path}", **kwargs) as ws:
        message = await ws.recv()
    assert isinstance(message, str)
    return message


async def refusal(server: Server, path: str, **kwargs: Any) -> Response:
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(f"ws://127.0.0.1:{server.port}{path}", **kwargs):
            pytest.fail("the handshake succeeded")
    return excinfo.value.response


async def test_route_dispatches() -> None:
    with anyio.fail_after(TIMEOUT):
        async with route(ROUTES, "127.0.0.1", 0) as server:
            assert await receive(server, "/") == "chat"
            assert await receive(server, "/chat?since=42") == "chat"
            assert await receive(server, "/rooms/caf%C3%A9") == "room café"
            assert await receive(server, "/rooms/red/users/bob") == "room red user bob"
            assert await receive(server, "/rooms/lobby") == "lobby"


async def test_route_unknown_path_404(caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.DEBUG, "anyws.server"):
        async with route(ROUTES, "127.0.0.1", 0) as server:
            response = await refusal(server, "/nope")
            assert response.status_code == 404
            assert response.reason_phrase == "Not Found"
            assert response.body == b"Not Found"
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert (await refusal(server, "/rooms/")).status_code == 404
            assert server.connections == set()
    # Answered before the upgrade, quietly.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_route_handler_sees_query_string() -> None:
    async def echo_path(connection: ServerConnection) -> None:
        assert connection.request is not None
        await connection.send(connection.request.path)

    with anyio.fail_after(TIMEOUT):
        async with route({"/p": echo_path}, "127.0.0.1", 0) as server:
            assert await receive(server, "/p?a=1&b=%20") == "/p?a=1&b=%20"


async def test_own_process_request_runs_first() -> None:
    seen: list[str] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(request.path)
        if request.path == "/healthz":
            return connection.respond(200, "OK\n")
        return None

    with anyio.fail_after(TIMEOUT):
        async with route(ROUTES, "127.0.0.1", 0, process_request=process_request) as server:
            # A health check answered by process_request needs no route.
            response = await refusal(server, "/healthz")
            assert (response.status_code, response.body) == (200, b"OK\n")
            assert (await refusal(server, "/nope")).status_code == 404
            assert await receive(server, "/rooms/red") == "room red"
    assert seen == ["/healthz", "/nope", "/rooms/red"]


async def test_with_basic_auth() -> None:
    # Auth runs before routing: without credentials, an unknown path is 401, not 404.
    auth = basic_auth(credentials=("alice", "s3cr3t"))
    alice = {"Authorization": build_authorization_basic("alice", "s3cr3t")}

    async def whoami(connection: ServerConnection, room: str) -> None:
        await connection.send(f"{connection.username} in {room}")

    with anyio.fail_after(TIMEOUT):
        async with route({"/rooms/{room}": whoami}, "127.0.0.1", 0, process_request=auth) as server:
            assert (await refusal(server, "/nope")).status_code == 401
            assert (await refusal(server, "/rooms/red")).status_code == 401
            assert (await refusal(server, "/nope", additional_headers=alice)).status_code == 404
            assert await receive(server, "/rooms/red", additional_headers=alice) == "alice in red"


async def test_async_process_request_and_serve_options() -> None:
    async def process_request(connection: ServerConnection, request: Request) -> None:
        await anyio.lowlevel.checkpoint()

    with anyio.fail_after(TIMEOUT):
        async with (
            route(
                ROUTES, "127.0.0.1", 0, process_request=process_request, subprotocols=["chat.v1"]
            ) as server,
            connect(f"ws://127.0.0.1:{server.port}/chat", subprotocols=["chat.v1"]) as ws,
        ):
            assert ws.subprotocol == "chat.v1"
            assert await ws.recv() == "chat"


async def test_handler_error_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(connection: ServerConnection, room: str) -> None:
        raise RuntimeError(f"no room {room}")

    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.ERROR, "anyws.server"):
        async with (
            route({"/rooms/{room}": broken}, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.port}/rooms/x") as ws,
        ):
            await ws.wait_closed()
            assert ws.close_code == 1011
    [record] = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "no room x"


async def test_route_serve_method() -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            server = await tg.start(route(ROUTES, "127.0.0.1", 0).serve)
            assert await receive(server, "/rooms/blue") == "room blue"
            await server.close()


async def test_public_path_before_auth() -> None:
    """The process_request of docs/howto/routing.md: one path open, the others authenticated."""
    auth = basic_auth(realm="my server", credentials=("alice", "s3cr3t"))

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] == "/public":
            return None
        return await auth(connection, request)

    with anyio.fail_after(TIMEOUT):
        async with route(
            {"/public": chat, "/rooms/{room}": room},
            "127.0.0.1",
            0,
            process_request=process_request,
        ) as server:
            assert await receive(server, "/public?x=1") == "chat"
            assert (await refusal(server, "/rooms/red")).status_code == 401
