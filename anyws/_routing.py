"""Routing connections by request path: `route`, a variant of `serve`.

Strategy: a pattern is split into path segments once, when `route` is called;
each segment is either a literal or a ``{name}`` parameter that matches one
whole, non-empty segment. A request path loses its query string, is split on
``/`` *before* percent-decoding (so ``%2F`` stays inside a segment), and each
segment is decoded and compared. Matching happens twice per connection, in
``process_request`` (to answer 404 before the upgrade) and in the handler (to
find the handler and its arguments): it is cheap, and it keeps no state on the
connection.
"""

from __future__ import annotations

import http
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._server import ProcessRequest, ServerConnection, _maybe_await, serve
from .sansio import Request, Response


__all__ = ["match_route", "route"]

RouteHandler = Callable[..., Awaitable[None]]

_PARAMETER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Parameter(str):
    """A ``{name}`` segment of a compiled pattern (a `str` subclass holding the name)."""

    __slots__ = ()


#: A compiled pattern: its segments, each a literal `str` or a `_Parameter`.
_Segments = tuple[str, ...]


def _compile(pattern: str) -> _Segments:
    """Split ``pattern`` into segments.

    Raises:
        ValueError: The pattern doesn't start with ``/``, a segment mixes a
            parameter with other text, or a parameter name repeats.
    """
    if not pattern.startswith("/"):
        raise ValueError(f"path must start with /: {pattern!r}")
    segments: list[str] = []
    names: set[str] = set()
    for segment in pattern[1:].split("/"):
        match = _PARAMETER_RE.fullmatch(segment)
        if match is not None:
            name = match.group(1)
            if name in names:
                raise ValueError(f"duplicate parameter {{{name}}} in {pattern!r}")
            names.add(name)
            segments.append(_Parameter(name))
        elif "{" in segment or "}" in segment:
            raise ValueError(
                f"a parameter must be a whole segment, as in /rooms/{{room}}: {pattern!r}"
            )
        else:
            segments.append(segment)
    return tuple(segments)


def match_route(
    routes: Mapping[str, RouteHandler], path: str
) -> tuple[RouteHandler, dict[str, str]] | None:
    """Find the handler for a request path; a pure function.

    A pattern without parameters matches the path exactly (after percent-decoding)
    and wins over patterns with parameters, which are tried in the order of
    ``routes``. ``{name}`` matches one non-empty path segment, percent-decoded.
    The query string is ignored; a trailing slash is significant.

    Args:
        routes: Patterns (``"/chat"``, ``"/rooms/{room}"``) mapped to handlers.
        path: The request target, as in `Request.path` (``/rooms/a%20b?x=1``).

    Returns:
        The handler and its keyword arguments (``{"room": "a b"}``), or ``None``
        when nothing matches (or the path isn't valid percent-encoded UTF-8).

    Raises:
        ValueError: A pattern is invalid (see `route`).
    """
    return _Router(routes).match(path)


class _Router:
    """Compiled patterns, exact ones first."""

    def __init__(self, routes: Mapping[str, RouteHandler]) -> None:
        exact: dict[_Segments, RouteHandler] = {}
        patterns: list[tuple[_Segments, RouteHandler]] = []
        for pattern, handler in routes.items():
            segments = _compile(pattern)
            if any(isinstance(segment, _Parameter) for segment in segments):
                patterns.append((segments, handler))
            else:
                exact[segments] = handler
        self._exact = exact
        self._patterns = patterns

    def match(self, path: str) -> tuple[RouteHandler, dict[str, str]] | None:
        path = path.partition("?")[0]
        if not path.startswith("/"):
            return None  # An absolute-form or asterisk-form target: not routed.
        try:
            segments = tuple(
                urllib.parse.unquote(segment, errors="strict") for segment in path[1:].split("/")
            )
        except UnicodeDecodeError:
            return None
        handler = self._exact.get(segments)
        if handler is not None:
            return handler, {}
        for pattern, handler in self._patterns:
            if len(pattern) != len(segments):
                continue
            params: dict[str, str] = {}
            for expected, segment in zip(pattern, segments, strict=True):
                if isinstance(expected, _Parameter):
                    if not segment:
                        break
                    params[str(expected)] = segment
                elif expected != segment:
                    break
            else:
                return handler, params
        return None


def route(
    handlers: Mapping[str, RouteHandler],
    host: str | None = None,
    port: int | None = None,
    *,
    process_request: ProcessRequest | None = None,
    **serve_kwargs: Any,
) -> serve:
    """Run a WebSocket server that dispatches each connection on its request path.

    ::

        async def chat(connection: anyws.ServerConnection) -> None:
            await connection.send("welcome to the chat")


        async def room(connection: anyws.ServerConnection, room: str) -> None:
            await connection.send(f"welcome to {room}")


        async def main(port: int = 8765) -> None:
            async with anyws.route(
                {"/chat": chat, "/rooms/{room}": room},
                "localhost",
                port,
            ) as server:
                print(f"listening on ws://localhost:{server.port}/")
                await server.serve_forever()

    `route` takes the same arguments as `serve`, with a mapping of paths to
    handlers instead of one handler, and returns the same context manager.

    - ``"/chat"`` matches that path exactly; ``"/rooms/{room}"`` matches
      ``/rooms/lobby`` and calls ``room(connection, room="lobby")``. A parameter
      matches one whole, non-empty segment, and is percent-decoded
      (``/rooms/caf%C3%A9`` gives ``"café"``, ``%2F`` gives a ``/``).
    - Exact paths win over patterns; patterns are tried in the mapping's order.
    - The query string is ignored (read it from ``connection.request.path``); a
      trailing slash is significant.
    - Any other path is answered with ``404 Not Found`` before the upgrade.

    Your own ``process_request`` runs first, and routing only if it returns
    ``None``: answers for health checks or auth failures (see `basic_auth`) take
    precedence, and unauthenticated clients can't probe which paths exist.

    Args:
        handlers: Path patterns mapped to handlers; a handler is called with
            the connection and the path parameters as keyword arguments.
        host, port: As for `serve`.
        process_request: As for `serve`; it runs before routing.
        serve_kwargs: Any other argument of `serve`.

    Returns:
        A `serve` context manager.

    Raises:
        ValueError: A pattern doesn't start with ``/``, has a parameter that
            isn't a whole segment, or repeats a parameter name.
    """
    router = _Router(handlers)

    async def route_request(connection: ServerConnection, request: Request) -> Response | None:
        if process_request is not None:
            response: Response | None = await _maybe_await(process_request(connection, request))
            if response is not None:
                return response
        if router.match(request.path) is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found")
        return None

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        match = router.match(connection.request.path)
        assert match is not None, "process_request let an unroutable path through"
        route_handler, params = match
        await route_handler(connection, **params)

    return serve(handler, host, port, process_request=route_request, **serve_kwargs)
