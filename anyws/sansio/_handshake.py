"""The opening handshake (RFC 6455, section 4), as pure functions.

The client builds its request with `build_request` and checks the answer with
`process_response`. The server checks the request with `process_request`,
negotiates with `check_origin`, `negotiate_extensions` and `negotiate_subprotocol`,
then answers with `build_accept_response`, or with `build_reject_response` and the
status that `rejection_status` picks for the exception it caught.

Nothing here reads a clock: the I/O layer may add a ``Date`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http
import os
import sys
from collections.abc import Callable, Sequence

from ..exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from ._headers import (
    Headers,
    HeadersLike,
    MultipleValuesError,
    build_authorization_basic,
    build_extension,
    build_subprotocol,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)
from ._http11 import Request, Response
from ._uri import WebSocketURI
from .extensions._base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)


__all__ = [
    "GUID",
    "SERVER",
    "USER_AGENT",
    "VERSION",
    "accept_key",
    "build_accept_response",
    "build_host",
    "build_reject_response",
    "build_request",
    "check_origin",
    "generate_key",
    "negotiate_extensions",
    "negotiate_subprotocol",
    "process_request",
    "process_response",
    "rejection_status",
]

#: The version of anyws. A constant rather than `importlib.metadata`, which reads the
#: file system and fails in a source checkout; a test keeps it equal to pyproject.toml.
VERSION = "0.1.0.dev0"

#: Default ``User-Agent`` header of clients.
USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} anyws/{VERSION}"

#: Default ``Server`` header of servers.
SERVER = USER_AGENT

#: RFC 6455, section 1.3: the GUID appended to the key to compute the accept value.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Subprotocol selector for `negotiate_subprotocol`: receives the subprotocols that
#: the client offered, in its order, and returns one of them or ``None``.
SubprotocolSelector = Callable[[Sequence[str]], "str | None"]


def generate_key() -> str:
    """Return a new ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    sha1 = hashlib.sha1((key + GUID).encode(), usedforsecurity=False)
    return base64.b64encode(sha1.digest()).decode("ascii")


def build_host(host: str, port: int, secure: bool) -> str:
    """Build a ``Host`` header: brackets around an IPv6 address, no default port."""
    if ":" in host:
        # RFC 6874: the "%" before a zone identifier is percent-encoded.
        host = f"[{host.replace('%', '%25')}]"
    if port != (443 if secure else 80):
        host = f"{host}:{port}"
    return host


# Client side.


def build_request(
    uri: WebSocketURI,
    *,
    key: str,
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    additional_headers: HeadersLike | None = None,
    user_agent_header: str | None = USER_AGENT,
) -> Request:
    """Build the opening handshake request (RFC 6455, section 4.1).

    The headers come in this order: ``Host``, ``Upgrade``, ``Connection``,
    ``Sec-WebSocket-Key``, ``Sec-WebSocket-Version``, then if needed ``Origin``,
    ``Sec-WebSocket-Extensions``, ``Sec-WebSocket-Protocol``, ``Authorization``
    (when ``uri`` has credentials), ``additional_headers`` and ``User-Agent``.

    A ``Host``, ``Origin``, ``Authorization`` or ``User-Agent`` in
    ``additional_headers`` replaces the one built here, so that, for example, a
    client may connect to an address and name a virtual host. Other headers are
    appended as they are.

    Raises:
        ValueError: A subprotocol, an extension parameter or a header is invalid.
    """
    extra = Headers(additional_headers) if additional_headers is not None else Headers()
    headers = Headers()
    # RFC 7230, section 5.4: Host comes first, even when additional_headers sets it.
    _put(headers, extra, "Host", build_host(uri.host, uri.port, uri.secure))
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Key"] = key
    headers["Sec-WebSocket-Version"] = "13"
    _put(headers, extra, "Origin", origin)
    if extensions:
        headers["Sec-WebSocket-Extensions"] = build_extension(
            [(factory.name, factory.get_request_params()) for factory in extensions]
        )
    if subprotocols:
        headers["Sec-WebSocket-Protocol"] = build_subprotocol(subprotocols)
    user_info = uri.user_info
    authorization = build_authorization_basic(*user_info) if user_info is not None else None
    _put(headers, extra, "Authorization", authorization)
    headers.update(extra)
    if user_agent_header is not None and "User-Agent" not in extra:
        headers["User-Agent"] = user_agent_header
    return Request(uri.resource_name, headers)


def _get_single(headers: Headers, name: str) -> str | None:
    """Return the value of a header that may appear at most once."""
    try:
        return headers.get(name)
    except MultipleValuesError:
        raise InvalidHeader(name, "multiple values") from None


def _check_upgrade(headers: Headers) -> None:
    # RFC 6455, section 4.1 (client) and 4.2.1 (server): "An |Upgrade| header field
    # containing the value "websocket", treated as an ASCII case-insensitive value",
    # and a |Connection| header field containing the token "Upgrade".
    # Connection first, then Upgrade, in the order websockets checks them.
    values = headers.get_all("Connection")
    if not values:
        raise InvalidUpgrade("Connection")
    options = [option for value in values for option in parse_connection(value)]
    if not any(option.lower() == "upgrade" for option in options):
        raise InvalidUpgrade("Connection", ", ".join(values))
    values = headers.get_all("Upgrade")
    if not values:
        raise InvalidUpgrade("Upgrade")
    protocols = [protocol for value in values for protocol in parse_upgrade(value)]
    if not any(protocol.lower() == "websocket" for protocol in protocols):
        raise InvalidUpgrade("Upgrade", ", ".join(values))


def process_response(
    response: Response,
    *,
    key: str,
    extensions: Sequence[ClientExtensionFactory] | None,
    subprotocols: Sequence[str] | None,
) -> tuple[list[Extension], str | None]:
    """Check the server's answer to the request built with ``key`` (RFC 6455, section 4.1).

    Returns:
        The negotiated extensions, in the server's order, and the subprotocol.

    Raises:
        InvalidStatus: The status isn't 101.
        InvalidUpgrade: ``Upgrade`` or ``Connection`` is missing or isn't an upgrade
            to WebSocket.
        InvalidHeader: ``Sec-WebSocket-Accept`` is missing or repeated, or several
            subprotocols were selected.
        InvalidHeaderValue: ``Sec-WebSocket-Accept`` doesn't match ``key``.
        InvalidHeaderFormat: A header can't be parsed.
        NegotiationError: The server selected an extension or a subprotocol that
            the client didn't offer, or an extension factory rejected its parameters.
    """
    if response.status_code != 101:
        raise InvalidStatus(response)
    headers = response.headers
    _check_upgrade(headers)

    accept = _get_single(headers, "Sec-WebSocket-Accept")
    if accept is None:
        raise InvalidHeader("Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)

    accepted: list[Extension] = []
    values = headers.get_all("Sec-WebSocket-Extensions")
    if values:
        if not extensions:
            raise NegotiationError("no extensions supported")
        # RFC 6455, section 9.1: the server may only accept extensions the client
        # offered; each offer is accepted at most once.
        available = list(extensions)
        for value in values:
            for name, params in parse_extension(value):
                for factory in available:
                    if factory.name != name:
                        continue
                    try:
                        extension = factory.process_response_params(params, accepted)
                    except NegotiationError:
                        continue
                    accepted.append(extension)
                    available.remove(factory)
                    break
                else:
                    raise NegotiationError(
                        f"unsupported extension: name = {name}, params = {params}"
                    )

    subprotocol = None
    values = headers.get_all("Sec-WebSocket-Protocol")
    if values:
        selected = [item for value in values for item in parse_subprotocol(value)]
        if len(selected) > 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", f"multiple values: {', '.join(selected)}")
        subprotocol = selected[0]
        if not subprotocols:
            raise NegotiationError("no subprotocols supported")
        if subprotocol not in subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {subprotocol}")

    return accepted, subprotocol


# Server side.


def process_request(request: Request) -> str:
    """Check an opening handshake request (RFC 6455, section 4.2.1); return its key.

    Raises:
        InvalidHeader: ``Host``, ``Sec-WebSocket-Key`` or ``Sec-WebSocket-Version``
            is missing or repeated.
        InvalidUpgrade: ``Upgrade`` or ``Connection`` is missing or isn't an upgrade
            to WebSocket.
        InvalidHeaderValue: ``Sec-WebSocket-Key`` isn't 16 bytes in base64, or
            ``Sec-WebSocket-Version`` isn't 13. For the latter (``exc.name ==
            "Sec-WebSocket-Version"``), RFC 6455, section 4.4 calls for a 426
            answer with ``Sec-WebSocket-Version: 13``: `rejection_status` returns
            426 and `build_reject_response` adds the header.
        InvalidHeaderFormat: ``Upgrade`` or ``Connection`` can't be parsed.
    """
    headers = request.headers
    if _get_single(headers, "Host") is None:
        raise InvalidHeader("Host")
    _check_upgrade(headers)

    key = _get_single(headers, "Sec-WebSocket-Key")
    if key is None:
        raise InvalidHeader("Sec-WebSocket-Key")
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidHeaderValue("Sec-WebSocket-Key", key) from None
    if len(raw_key) != 16:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key)

    version = _get_single(headers, "Sec-WebSocket-Version")
    if version is None:
        raise InvalidHeader("Sec-WebSocket-Version")
    if version != "13":
        raise InvalidHeaderValue("Sec-WebSocket-Version", version)

    return key


def check_origin(request: Request, origins: Sequence[str | None] | None) -> None:
    """Check the ``Origin`` header against the allowed ``origins``.

    ``origins`` ``None`` allows any origin; include ``None`` in the sequence to
    allow requests without ``Origin`` (clients other than browsers).

    Raises:
        InvalidOrigin: The origin isn't allowed.
        InvalidHeader: ``Origin`` is repeated.
    """
    if origins is None:
        return
    origin = _get_single(request.headers, "Origin")
    if origin not in origins:
        raise InvalidOrigin(origin)


def negotiate_extensions(
    request: Request, factories: Sequence[ServerExtensionFactory] | None
) -> tuple[str | None, list[Extension]]:
    """Accept extensions among those the client offered (RFC 6455, section 9.1).

    Offers are considered in the client's order; for each, the factories with the
    same name are tried in order. An offer that every factory declines (with
    `NegotiationError`) is skipped, and so is one for a name already accepted.

    Returns:
        The ``Sec-WebSocket-Extensions`` header to answer with, ``None`` if none
        was accepted, and the accepted extensions.

    Raises:
        InvalidHeaderFormat: ``Sec-WebSocket-Extensions`` can't be parsed.
    """
    values = request.headers.get_all("Sec-WebSocket-Extensions")
    if not values or not factories:
        return None, []
    accepted: list[Extension] = []
    response_items: list[tuple[str, list[ExtensionParameter]]] = []
    offers = [offer for value in values for offer in parse_extension(value)]
    for name, params in offers:
        if any(accepted_name == name for accepted_name, _ in response_items):
            continue
        for factory in factories:
            if factory.name != name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            accepted.append(extension)
            response_items.append((name, response_params))
            break
    if not accepted:
        return None, []
    return build_extension(response_items), accepted


def negotiate_subprotocol(
    request: Request,
    available: Sequence[str] | None,
    select: SubprotocolSelector | None = None,
) -> str | None:
    """Pick the subprotocol, if any.

    By default, as websockets does: with no ``available`` subprotocols, ``None``,
    whatever the client offered; else the first of ``available`` (the server's
    preference order) that the client offered. A server that names subprotocols
    requires one: a client offering none of them is rejected (400).

    With ``select``, call it with the client's offers (possibly none) instead, and
    ignore ``available``: it may return ``None`` to go on without a subprotocol,
    or raise `NegotiationError` to reject the handshake.

    Raises:
        InvalidHeaderFormat: ``Sec-WebSocket-Protocol`` can't be parsed.
        NegotiationError: The client offered no subprotocol ("missing
            subprotocol") or none of ``available`` ("invalid subprotocol;
            expected one of ..."); or ``select`` returned a subprotocol that the
            client didn't offer.
    """
    values = request.headers.get_all("Sec-WebSocket-Protocol")
    offered = [item for value in values for item in parse_subprotocol(value)]
    if select is not None:
        subprotocol = select(offered)
        if subprotocol is not None and subprotocol not in offered:
            raise NegotiationError(f"selected subprotocol wasn't offered: {subprotocol}")
        return subprotocol
    if not available:
        return None
    if not offered:
        raise NegotiationError("missing subprotocol")
    for subprotocol in available:
        if subprotocol in offered:
            return subprotocol
    raise NegotiationError("invalid subprotocol; expected one of " + ", ".join(available))


def build_accept_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions_header: str | None = None,
    server_header: str | None = SERVER,
    additional_headers: HeadersLike | None = None,
) -> Response:
    """Build the 101 response accepting a handshake (RFC 6455, section 4.2.2).

    The headers are ``Upgrade``, ``Connection``, ``Sec-WebSocket-Accept``, then if
    needed ``Sec-WebSocket-Extensions``, ``Sec-WebSocket-Protocol``,
    ``additional_headers`` and ``Server``. A ``Server`` in ``additional_headers``
    replaces ``server_header``.

    Raises:
        ValueError: The subprotocol or a header is invalid.
    """
    headers = Headers()
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Accept"] = accept_key(key)
    if extensions_header is not None:
        headers["Sec-WebSocket-Extensions"] = extensions_header
    if subprotocol is not None:
        headers["Sec-WebSocket-Protocol"] = build_subprotocol([subprotocol])
    extra = Headers(additional_headers) if additional_headers is not None else Headers()
    headers.update(extra)
    if server_header is not None and "Server" not in extra:
        headers["Server"] = server_header
    return Response(101, "Switching Protocols", headers)


def build_reject_response(
    status: int | http.HTTPStatus,
    text: str,
    *,
    headers: HeadersLike | None = None,
    server_header: str | None = SERVER,
) -> Response:
    """Build a response rejecting a handshake, with ``text`` as a plain text body.

    The headers are ``Connection: close``, ``Content-Type: text/plain;
    charset=utf-8``, ``Content-Length``, then ``headers`` and ``Server``. A
    ``Connection``, ``Content-Type`` or ``Server`` in ``headers`` replaces the one
    built here; ``Content-Length`` is always the length of the body.

    A 426 response also gets ``Upgrade: websocket`` (RFC 7231, section 6.5.15),
    hence ``Connection: Upgrade, close`` (RFC 7230, section 6.7), and
    ``Sec-WebSocket-Version: 13`` (RFC 6455, section 4.4).

    Raises:
        ValueError: ``status`` isn't in 100-599 or a header is invalid.
    """
    try:
        reason_phrase = http.HTTPStatus(status).phrase
    except ValueError:
        reason_phrase = ""
    body = text.encode("utf-8", "backslashreplace")
    extra = Headers(headers) if headers is not None else Headers()
    response_headers = Headers()
    if status == http.HTTPStatus.UPGRADE_REQUIRED:
        response_headers["Upgrade"] = "websocket"
        _put(response_headers, extra, "Connection", "Upgrade, close")
        response_headers["Sec-WebSocket-Version"] = "13"
    else:
        _put(response_headers, extra, "Connection", "close")
    _put(response_headers, extra, "Content-Type", "text/plain; charset=utf-8")
    # Whatever headers says, the body has the length it has.
    response_headers["Content-Length"] = str(len(body))
    if "Content-Length" in extra:
        del extra["Content-Length"]
    response_headers.update(extra)
    if server_header is not None and "Server" not in extra:
        response_headers["Server"] = server_header
    return Response(int(status), reason_phrase, response_headers, body)


def _put(headers: Headers, extra: Headers, name: str, default: str | None) -> None:
    """Add ``name`` to ``headers``: move its values out of ``extra``, else use ``default``."""
    values = extra.get_all(name)
    if values:
        del extra[name]
    elif default is not None:
        values = [default]
    for value in values:
        headers[name] = value


def rejection_status(exc: BaseException) -> http.HTTPStatus:
    """Return the status to answer a handshake request that failed with ``exc``.

    - 426 Upgrade Required for a request that isn't a WebSocket upgrade
      (`InvalidUpgrade`, as websockets does) or asks for another version of the
      protocol (`InvalidHeaderValue` for ``Sec-WebSocket-Version``);
    - 403 Forbidden for `InvalidOrigin`;
    - 400 Bad Request for any other `InvalidHandshake`;
    - 500 Internal Server Error for anything else.
    """
    if isinstance(exc, InvalidUpgrade) or (
        isinstance(exc, InvalidHeaderValue) and exc.name == "Sec-WebSocket-Version"
    ):
        return http.HTTPStatus.UPGRADE_REQUIRED
    if isinstance(exc, InvalidOrigin):
        return http.HTTPStatus.FORBIDDEN
    if isinstance(exc, InvalidHandshake):
        return http.HTTPStatus.BAD_REQUEST
    return http.HTTPStatus.INTERNAL_SERVER_ERROR
