"""HTTP Basic authentication for the server: `basic_auth`, a ``process_request`` factory."""

from __future__ import annotations

import hmac
import http
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from .exceptions import InvalidHeader
from .sansio import MultipleValuesError
from .sansio._surface import parse_authorization_basic


if TYPE_CHECKING:
    from ._server import ServerConnection
    from .sansio import Request, Response


__all__ = ["basic_auth"]

# RFC 7230, section 3.2.6: what a quoted-string can carry (qdtext and quoted-pair).
_QUOTABLE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_QUOTE_RE = re.compile(r'(["\\])')


def _build_www_authenticate_basic(realm: str) -> str:
    """Build a ``WWW-Authenticate`` header value for HTTP Basic authentication (RFC 7617).

    Raises:
        ValueError: ``realm`` has characters that a quoted-string can't carry.
    """
    if _QUOTABLE_RE.fullmatch(realm) is None:
        raise ValueError(f"invalid characters for quoted-string encoding: {realm!r}")
    # RFC 7617, section 2.1: the only allowed charset is "UTF-8".
    quoted = _QUOTE_RE.sub(r"\\\1", realm)
    return f'Basic realm="{quoted}", charset="UTF-8"'


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    )


def basic_auth(
    realm: str = "",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: Callable[[str, str], Awaitable[bool] | bool] | None = None,
) -> Callable[[ServerConnection, Request], Awaitable[Response | None]]:
    """Build a ``process_request`` for `serve` that enforces HTTP Basic authentication.

    ::

        async def main(port: int = 8765) -> None:
            auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))
            async with anyws.serve(handler, "localhost", port, process_request=auth) as server:
                print(f"listening on ws://localhost:{server.port}/")
                await server.serve_forever()

    When the request carries valid credentials, the returned coroutine function
    sets `ServerConnection.username` and returns ``None``: the handshake goes
    on. Otherwise it returns a 401 Unauthorized response with a
    ``WWW-Authenticate: Basic realm="...", charset="UTF-8"`` header, and a body
    saying why: ``Missing credentials``, ``Unsupported credentials`` (not Basic,
    malformed, not UTF-8, or the header repeated) or ``Invalid credentials``.

    To combine it with your own checks, call it from your ``process_request``::

        auth = anyws.basic_auth(realm="my server", credentials=("alice", "s3cr3t"))


        async def process_request(
            connection: anyws.ServerConnection, request: anyws.Request
        ) -> anyws.Response | None:
            if request.path == "/healthz":
                return connection.respond(200, "OK\\n")
            return await auth(connection, request)

    Give exactly one of ``credentials`` and ``check_credentials``.

    Args:
        realm: The protection space, shown by browsers. Use ASCII: the encoding
            of other characters is undefined (RFC 7235, section 2.2).
        credentials: The accepted ``(username, password)`` pair, or an iterable
            of such pairs. Passwords are compared in constant time
            (``hmac.compare_digest``).
        check_credentials: A function or coroutine function called with
            ``(username, password)`` that returns whether they are valid. An
            exception it raises answers the request with 500, as any error in
            ``process_request`` does.

    Returns:
        A coroutine function to pass as ``process_request``.

    Raises:
        TypeError: ``credentials`` is neither a pair of strings nor an iterable of them.
        ValueError: Both or neither of ``credentials`` and ``check_credentials``
            are given, or ``realm`` can't be sent in a header.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("provide either credentials or check_credentials")
    www_authenticate = _build_www_authenticate_basic(realm)

    if credentials is not None:
        pairs: list[tuple[str, str]]
        if _is_pair(credentials):
            pairs = [cast("tuple[str, str]", credentials)]
        elif isinstance(credentials, Iterable) and not isinstance(credentials, str | bytes):
            pairs = list(cast("Iterable[tuple[str, str]]", credentials))
            if not all(_is_pair(pair) for pair in pairs):
                raise TypeError(f"invalid credentials argument: {credentials}")
        else:
            raise TypeError(f"invalid credentials argument: {credentials}")
        passwords = {
            username.encode(errors="surrogateescape"): password.encode(errors="surrogateescape")
            for username, password in pairs
        }

        def check_pairs(username: str, password: str) -> bool:
            given = password.encode(errors="surrogateescape")
            expected = passwords.get(username.encode(errors="surrogateescape"))
            if expected is None:
                # Compare anyway, so an unknown user takes as long as a wrong password.
                hmac.compare_digest(given, given)
                return False
            return hmac.compare_digest(expected, given)

        check: Callable[[str, str], Awaitable[bool] | bool] = check_pairs
    else:
        assert check_credentials is not None
        check = check_credentials

    def unauthorized(connection: ServerConnection, text: str) -> Response:
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, text)
        response.headers["WWW-Authenticate"] = www_authenticate
        return response

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        """Check the request's credentials; set ``connection.username`` or answer 401.

        Cancellation (the server's ``open_timeout``, for example) cancels an
        asynchronous ``check_credentials`` and leaves ``username`` unset.
        """
        try:
            authorization = request.headers["Authorization"]
        except MultipleValuesError:
            return unauthorized(connection, "Unsupported credentials\n")
        except KeyError:
            return unauthorized(connection, "Missing credentials\n")
        try:
            username, password = parse_authorization_basic(authorization)
        except InvalidHeader:
            return unauthorized(connection, "Unsupported credentials\n")
        valid = check(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        if not valid:
            return unauthorized(connection, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request
