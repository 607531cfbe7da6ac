"""`basic_auth`: HTTP Basic authentication in ``process_request``, over real TCP on 127.0.0.1."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anyws import (
    InvalidStatus,
    Request,
    Response,
    Server,
    ServerConnection,
    basic_auth,
    connect,
    serve,
)
from anyws.sansio._headers import build_authorization_basic
from tests.conftest import MS


TIMEOUT = 10_000 * MS

ALICE = build_authorization_basic("alice", "s3cr3t")


async def whoami(connection: ServerConnection) -> None:
    await connection.send(f"hello {connection.username}")


async def rejection(server: Server, headers: dict[str, str] | None = None) -> Response:
    """Connect with ``headers``; return the server's refusal."""
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(f"ws://127.0.0.1:{server.port}/", additional_headers=headers):
            pytest.fail("the handshake succeeded")
    return excinfo.value.response


async def greeting(server: Server, headers: dict[str, str], path: str = "/") -> str:
    async with connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers) as ws:
        message = await ws.recv()
    assert isinstance(message, str)
    return message


# Arguments ---------------------------------------------------------------------


def test_credentials_or_check_credentials_required() -> None:
    with pytest.raises(ValueError, match=r"^provide either credentials or check_credentials$"):
        basic_auth()


def test_credentials_and_check_credentials_exclusive() -> None:
    with pytest.raises(ValueError, match=r"^provide either credentials or check_credentials$"):
        basic_auth(credentials=("a", "b"), check_credentials=lambda user, password: True)


@pytest.mark.parametrize(
    "credentials",
    [42, "ab", ("alice",), ("alice", 1), [("alice", "pw"), ("bob",)], [("a", "b", "c")]],
    ids=["int", "str", "short", "non-str", "one-bad-pair", "triple"],
)
def test_invalid_credentials_argument(credentials: Any) -> None:
    with pytest.raises(TypeError) as excinfo:
        basic_auth(credentials=credentials)
    assert str(excinfo.value) == f"invalid credentials argument: {credentials}"


def test_invalid_realm() -> None:
    with pytest.raises(ValueError, match="invalid characters for quoted-string encoding"):
        basic_auth(realm="new\nline", credentials=("a", "b"))


# Refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (None, b"Missing credentials\n"),
        ({"Authorization": "Bearer abc"}, b"Unsupported credentials\n"),
        ({"Authorization": "Basic !!!"}, b"Unsupported credentials\n"),
        ({"Authorization": "Basic bm9jb2xvbg=="}, b"Unsupported credentials\n"),  # nocolon
        ({"Authorization": build_authorization_basic("alice", "wrong")}, b"Invalid credentials\n"),
        (
            {"Authorization": build_authorization_basic("mallory", "s3cr3t")},
            b"Invalid credentials\n",
        ),
        ({"Authorization": build_authorization_basic("alice", "")}, b"Invalid credentials\n"),
    ],
    ids=["missing", "bearer", "not-base64", "no-colon", "wrong-password", "unknown-user", "empty"],
)
async def test_refused_with_401(headers: dict[str, str] | None, body: bytes) -> None:
    auth = basic_auth(realm="test", credentials=("alice", "s3cr3t"))
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            response = await rejection(server, headers)
    assert response.status_code == 401
    assert response.reason_phrase == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="test", charset="UTF-8"'
    assert response.body == body


async def test_repeated_authorization_header_refused() -> None:
    # Two Authorization fields: which one counts is ambiguous, so neither does.
    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        request.headers["Authorization"] = ALICE  # Headers is a multimap: adds a second one.
        return await auth(connection, request)

    auth = basic_auth(credentials=("alice", "s3cr3t"))
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=process_request) as server:
            response = await rejection(server, {"Authorization": ALICE})
    assert response.status_code == 401
    assert response.body == b"Unsupported credentials\n"


async def test_realm_is_quoted() -> None:
    auth = basic_auth(realm='say "hi" \\o/', credentials=("alice", "s3cr3t"))
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            response = await rejection(server)
    assert response.headers["WWW-Authenticate"] == (
        'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
    )


# Acceptance ----------------------------------------------------------------------


async def test_valid_credentials_set_username() -> None:
    auth = basic_auth(credentials=("alice", "s3cr3t"))
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            assert await greeting(server, {"Authorization": ALICE}) == "hello alice"
            # The scheme is case-insensitive (RFC 7235, section 2.1).
            lower = "basic " + ALICE.removeprefix("Basic ")
            assert await greeting(server, {"Authorization": lower}) == "hello alice"


async def test_several_credentials() -> None:
    auth = basic_auth(credentials=[("alice", "s3cr3t"), ("bob", "pa:ss wörd")])
    bob = build_authorization_basic("bob", "pa:ss wörd")
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            assert await greeting(server, {"Authorization": ALICE}) == "hello alice"
            assert await greeting(server, {"Authorization": bob}) == "hello bob"
            wrong = build_authorization_basic("bob", "s3cr3t")
            assert (await rejection(server, {"Authorization": wrong})).status_code == 401


async def test_credentials_from_a_generator() -> None:
    auth = basic_auth(credentials=(pair for pair in [("alice", "s3cr3t")]))
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            assert await greeting(server, {"Authorization": ALICE}) == "hello alice"


async def test_sync_check_credentials() -> None:
    calls: list[tuple[str, str]] = []

    def check(username: str, password: str) -> bool:
        calls.append((username, password))
        return password == username[::-1]

    auth = basic_auth(check_credentials=check)
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            header = build_authorization_basic("otto", "otto")
            assert await greeting(server, {"Authorization": header}) == "hello otto"
            header = build_authorization_basic("bob", "bobby")
            assert (await rejection(server, {"Authorization": header})).body == (
                b"Invalid credentials\n"
            )
    assert calls == [("otto", "otto"), ("bob", "bobby")]


async def test_async_check_credentials() -> None:
    async def check(username: str, password: str) -> bool:
        await anyio.lowlevel.checkpoint()
        return (username, password) == ("alice", "s3cr3t")

    auth = basic_auth(check_credentials=check)
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            assert await greeting(server, {"Authorization": ALICE}) == "hello alice"
            header = build_authorization_basic("alice", "nope")
            assert (await rejection(server, {"Authorization": header})).status_code == 401


async def test_check_credentials_error_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    def check(username: str, password: str) -> bool:
        raise RuntimeError("database down")

    auth = basic_auth(check_credentials=check)
    with anyio.fail_after(TIMEOUT), caplog.at_level(logging.ERROR, "anyws.server"):
        async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
            response = await rejection(server, {"Authorization": ALICE})
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.getMessage() == "opening handshake failed"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "database down"


async def test_composed_with_own_process_request() -> None:
    # The pattern docs/howto/authentication.md shows.
    auth = basic_auth(realm="test", credentials=("alice", "s3cr3t"))

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "OK\n")
        return await auth(connection, request)

    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as excinfo:
                async with connect(f"ws://127.0.0.1:{server.port}/healthz"):
                    pytest.fail("the handshake succeeded")
            assert excinfo.value.response.status_code == 200
            assert (await rejection(server)).status_code == 401
            assert await greeting(server, {"Authorization": ALICE}) == "hello alice"


async def test_username_is_none_without_auth() -> None:
    with anyio.fail_after(TIMEOUT):
        async with serve(whoami, "127.0.0.1", 0) as server:
            assert await greeting(server, {}) == "hello None"
