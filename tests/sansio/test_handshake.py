from __future__ import annotations

import base64
import http
import importlib.metadata
import re
from collections.abc import Callable, Sequence

import pytest

import anyws
from anyws.exceptions import (
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)
from anyws.sansio._handshake import (
    GUID,
    SERVER,
    USER_AGENT,
    VERSION,
    accept_key,
    build_accept_response,
    build_host,
    build_reject_response,
    build_request,
    check_origin,
    generate_key,
    negotiate_extensions,
    negotiate_subprotocol,
    process_request,
    process_response,
    rejection_status,
)
from anyws.sansio._headers import Headers
from anyws.sansio._http11 import Request, Response, parse_request, parse_response
from anyws.sansio._uri import WebSocketURI, parse_uri
from anyws.sansio.extensions import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)


KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

Params = Sequence[ExtensionParameter]


class FakeExtension(Extension):
    def __init__(self, name: str, params: Params) -> None:
        self.name = name
        self.params = list(params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FakeExtension):
            return NotImplemented
        return (self.name, self.params) == (other.name, other.params)

    def __repr__(self) -> str:
        return f"FakeExtension({self.name!r}, {self.params!r})"


class FakeClientFactory(ClientExtensionFactory):
    """Offers ``params``; accepts the server's parameters if ``accept`` says so."""

    def __init__(
        self,
        name: str,
        params: Params = (),
        accept: Callable[[Params], bool] = lambda params: True,
    ) -> None:
        self.name = name
        self.params = list(params)
        self.accept = accept
        self.calls: list[tuple[list[ExtensionParameter], list[Extension]]] = []

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        return self.params

    def process_response_params(
        self, params: Params, accepted_extensions: Sequence[Extension]
    ) -> Extension:
        self.calls.append((list(params), list(accepted_extensions)))
        if not self.accept(params):
            raise NegotiationError(f"{self.name} declines {params}")
        return FakeExtension(self.name, params)


class FakeServerFactory(ServerExtensionFactory):
    """Accepts offers that ``accept`` likes, answering with ``response`` or the offer."""

    def __init__(
        self,
        name: str,
        response: Params | None = None,
        accept: Callable[[Params], bool] = lambda params: True,
    ) -> None:
        self.name = name
        self.response = response
        self.accept = accept
        self.calls: list[tuple[list[ExtensionParameter], list[Extension]]] = []

    def process_request_params(
        self, params: Params, accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        self.calls.append((list(params), list(accepted_extensions)))
        if not self.accept(params):
            raise NegotiationError(f"{self.name} declines {params}")
        response = list(params if self.response is None else self.response)
        return response, FakeExtension(self.name, response)


def make_request(*fields: tuple[str, str], path: str = "/") -> Request:
    return Request(path, Headers(fields))


def valid_request(*extra: tuple[str, str]) -> Request:
    return make_request(
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        *extra,
    )


def without(request: Request, name: str) -> Request:
    headers = request.headers.copy()
    del headers[name]
    return Request(request.path, headers)


def replaced(request: Request, name: str, *values: str) -> Request:
    headers = request.headers.copy()
    del headers[name]
    for value in values:
        headers[name] = value
    return Request(request.path, headers)


def make_response(*extra: tuple[str, str], status_code: int = 101) -> Response:
    return Response(
        status_code,
        "Switching Protocols",
        Headers(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", ACCEPT),
                *extra,
            ]
        ),
    )


def without_header(response: Response, name: str) -> Response:
    headers = response.headers.copy()
    del headers[name]
    return Response(response.status_code, response.reason_phrase, headers)


def with_header(response: Response, name: str, *values: str) -> Response:
    headers = response.headers.copy()
    if name in headers:
        del headers[name]
    for value in values:
        headers[name] = value
    return Response(response.status_code, response.reason_phrase, headers)


# Keys.


def test_accept_key_rfc_6455_example() -> None:
    # RFC 6455, section 1.3.
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(KEY) == ACCEPT


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16


def test_version_is_the_package_version() -> None:
    """The User-Agent's version (the core can't import anyws) is ``anyws.__version__``."""
    assert anyws.__version__ == VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", VERSION)


def test_version_is_the_installed_version() -> None:
    """The metadata of the distribution installed (if any) has ``anyws.__version__``."""
    try:
        installed = importlib.metadata.version("anyws")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("anyws isn't installed, only on sys.path")
    assert installed == anyws.__version__


def test_user_agent() -> None:
    assert re.fullmatch(r"Python/3\.\d+ anyws/\S+", USER_AGENT)
    assert USER_AGENT.endswith(f"anyws/{VERSION}")
    assert SERVER == USER_AGENT


@pytest.mark.parametrize(
    ("host", "port", "secure", "expected"),
    [
        ("example.com", 80, False, "example.com"),
        ("example.com", 443, True, "example.com"),
        ("example.com", 443, False, "example.com:443"),
        ("example.com", 80, True, "example.com:80"),
        ("example.com", 8765, False, "example.com:8765"),
        ("127.0.0.1", 8765, False, "127.0.0.1:8765"),
        ("::1", 80, False, "[::1]"),
        ("::1", 8765, True, "[::1]:8765"),
        ("fe80::1%eth0", 80, False, "[fe80::1%25eth0]"),
    ],
)
def test_build_host(host: str, port: int, secure: bool, expected: str) -> None:
    assert build_host(host, port, secure) == expected


# Client side: the request.


class TestBuildRequest:
    def test_minimal(self) -> None:
        request = build_request(parse_uri("ws://example.com/chat"), key=KEY)
        assert request.serialize() == (
            b"GET /chat HTTP/1.1\r\n"
            b"Host: example.com\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"User-Agent: " + USER_AGENT.encode() + b"\r\n"
            b"\r\n"
        )

    def test_everything(self) -> None:
        request = build_request(
            parse_uri("wss://user:pass@[::1]:8443/chat?room=1"),
            key=KEY,
            origin="https://example.com",
            extensions=[
                FakeClientFactory("x-foo", [("a", "1"), ("b", None)]),
                FakeClientFactory("x-bar"),
            ],
            subprotocols=["chat", "superchat"],
            additional_headers=[("X-Extra", "1"), ("X-Extra", "2")],
            user_agent_header="agent/1.0",
        )
        assert request.path == "/chat?room=1"
        assert request.headers.items() == [
            ("Host", "[::1]:8443"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "https://example.com"),
            ("Sec-WebSocket-Extensions", "x-foo; a=1; b, x-bar"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("X-Extra", "1"),
            ("X-Extra", "2"),
            ("User-Agent", "agent/1.0"),
        ]

    def test_no_user_agent(self) -> None:
        request = build_request(parse_uri("ws://h/"), key=KEY, user_agent_header=None)
        assert "User-Agent" not in request.headers

    def test_empty_lists_add_no_headers(self) -> None:
        request = build_request(parse_uri("ws://h/"), key=KEY, extensions=[], subprotocols=[])
        assert "Sec-WebSocket-Extensions" not in request.headers
        assert "Sec-WebSocket-Protocol" not in request.headers

    def test_additional_headers_replace_some_headers(self) -> None:
        request = build_request(
            parse_uri("ws://user:pass@127.0.0.1:8000/"),
            key=KEY,
            origin="https://a.example",
            additional_headers={
                "host": "virtual.example",
                "Origin": "https://b.example",
                "Authorization": "Bearer token",
                "User-Agent": "custom",
                "Upgrade": "h2c",  # not replaced: appended
            },
        )
        assert request.headers.items() == [
            ("Host", "virtual.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "https://b.example"),
            ("Authorization", "Bearer token"),
            ("User-Agent", "custom"),
            ("Upgrade", "h2c"),
        ]

    def test_additional_headers_as_headers(self) -> None:
        extra = Headers(X="1")
        request = build_request(parse_uri("ws://h/"), key=KEY, additional_headers=extra)
        assert request.headers["X"] == "1"
        assert extra.items() == [("X", "1")]  # not consumed

    def test_invalid_subprotocol(self) -> None:
        with pytest.raises(ValueError, match="invalid subprotocol"):
            build_request(parse_uri("ws://h/"), key=KEY, subprotocols=["a b"])

    def test_invalid_additional_header(self) -> None:
        with pytest.raises(ValueError, match="invalid value for header X"):
            build_request(parse_uri("ws://h/"), key=KEY, additional_headers={"X": "a\r\nb"})

    def test_round_trip(self) -> None:
        request = build_request(
            parse_uri("ws://b\xfccher.example:1234/\u263a?q"),
            key=KEY,
            origin="null",
            subprotocols=["v1"],
        )
        assert parse_request(request.serialize()) == (request, len(request.serialize()))
        assert request.headers["Host"] == "xn--bcher-kva.example:1234"
        assert request.path == "/%E2%98%BA?q"


# Client side: the response.


def process(
    response: Response,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
) -> tuple[list[Extension], str | None]:
    return process_response(response, key=KEY, extensions=extensions, subprotocols=subprotocols)


class TestProcessResponse:
    def test_accept(self) -> None:
        assert process(make_response()) == ([], None)

    @pytest.mark.parametrize("status_code", [200, 400, 403, 426, 500])
    def test_status(self, status_code: int) -> None:
        response = make_response(status_code=status_code)
        with pytest.raises(InvalidStatus) as exc_info:
            process(response)
        assert exc_info.value.response is response
        assert str(exc_info.value) == f"server rejected WebSocket connection: HTTP {status_code}"

    @pytest.mark.parametrize(
        "values",
        [["WebSocket"], ["WEBSOCKET"], ["h2c, websocket"], ["h2c", "websocket"], ["websocket, "]],
    )
    def test_upgrade_ok(self, values: list[str]) -> None:
        assert process(with_header(make_response(), "Upgrade", *values)) == ([], None)

    @pytest.mark.parametrize(
        "values",
        [["Upgrade"], ["keep-alive, upgrade"], ["close", "UPGRADE"], [" , Upgrade"]],
    )
    def test_connection_ok(self, values: list[str]) -> None:
        assert process(with_header(make_response(), "Connection", *values)) == ([], None)

    @pytest.mark.parametrize(
        ("name", "values", "message"),
        [
            ("Upgrade", [], "missing Upgrade header"),
            ("Upgrade", ["h2c"], "invalid Upgrade header: h2c"),
            ("Upgrade", ["websocket/13"], "invalid Upgrade header: websocket/13"),
            ("Upgrade", ["h2c", "http/2"], "invalid Upgrade header: h2c, http/2"),
            ("Connection", [], "missing Connection header"),
            ("Connection", ["close"], "invalid Connection header: close"),
            ("Connection", ["keep-alive", "close"], "invalid Connection header: keep-alive, close"),
        ],
    )
    def test_invalid_upgrade(self, name: str, values: list[str], message: str) -> None:
        response = with_header(make_response(), name, *values)
        with pytest.raises(InvalidUpgrade) as exc_info:
            process(response)
        assert str(exc_info.value) == message

    def test_upgrade_format(self) -> None:
        with pytest.raises(InvalidHeaderFormat) as exc_info:
            process(with_header(make_response(), "Upgrade", "web socket"))
        assert str(exc_info.value) == ("invalid Upgrade header: expected comma at 4 in web socket")
        with pytest.raises(InvalidHeaderFormat):
            process(with_header(make_response(), "Connection", ""))

    def test_missing_accept(self) -> None:
        with pytest.raises(InvalidHeader) as exc_info:
            process(without_header(make_response(), "Sec-WebSocket-Accept"))
        assert type(exc_info.value) is InvalidHeader
        assert str(exc_info.value) == "missing Sec-WebSocket-Accept header"

    def test_wrong_accept(self) -> None:
        response = with_header(make_response(), "Sec-WebSocket-Accept", accept_key(generate_key()))
        with pytest.raises(InvalidHeaderValue) as exc_info:
            process(response)
        assert str(exc_info.value).startswith("invalid Sec-WebSocket-Accept header: ")
        with pytest.raises(InvalidHeaderValue):
            process(with_header(make_response(), "Sec-WebSocket-Accept", ""))

    def test_repeated_accept(self) -> None:
        response = with_header(make_response(), "Sec-WebSocket-Accept", ACCEPT, ACCEPT)
        with pytest.raises(InvalidHeader) as exc_info:
            process(response)
        assert str(exc_info.value) == "invalid Sec-WebSocket-Accept header: multiple values"

    # Extensions.

    def test_extension(self) -> None:
        foo = FakeClientFactory("x-foo", [("a", "1")])
        response = make_response(("Sec-WebSocket-Extensions", "x-foo; a=2"))
        assert process(response, [foo]) == ([FakeExtension("x-foo", [("a", "2")])], None)
        assert foo.calls == [([("a", "2")], [])]

    def test_extensions_in_server_order(self) -> None:
        foo, bar = FakeClientFactory("x-foo"), FakeClientFactory("x-bar")
        response = make_response(
            ("Sec-WebSocket-Extensions", "x-bar"), ("Sec-WebSocket-Extensions", "x-foo; b")
        )
        extensions, _ = process(response, [foo, bar])
        assert extensions == [FakeExtension("x-bar", []), FakeExtension("x-foo", [("b", None)])]
        # Each factory sees the extensions accepted before it.
        assert foo.calls == [([("b", None)], [FakeExtension("x-bar", [])])]

    def test_extension_offered_but_not_accepted(self) -> None:
        assert process(make_response(), [FakeClientFactory("x-foo")]) == ([], None)

    def test_extension_not_offered(self) -> None:
        response = make_response(("Sec-WebSocket-Extensions", "x-bar; a=1"))
        with pytest.raises(NegotiationError) as exc_info:
            process(response, [FakeClientFactory("x-foo")])
        assert str(exc_info.value) == "unsupported extension: name = x-bar, params = [('a', '1')]"

    @pytest.mark.parametrize("extensions", [None, []])
    def test_extension_while_none_offered(self, extensions: list[ClientExtensionFactory]) -> None:
        response = make_response(("Sec-WebSocket-Extensions", "x-foo"))
        with pytest.raises(NegotiationError) as exc_info:
            process(response, extensions)
        assert str(exc_info.value) == "no extensions supported"

    def test_extension_parameters_refused(self) -> None:
        foo = FakeClientFactory("x-foo", accept=lambda params: not params)
        response = make_response(("Sec-WebSocket-Extensions", "x-foo; bad"))
        with pytest.raises(NegotiationError) as exc_info:
            process(response, [foo])
        message = "unsupported extension: name = x-foo, params = [('bad', None)]"
        assert str(exc_info.value) == message

    def test_extension_resolved_by_next_offer_with_same_name(self) -> None:
        strict = FakeClientFactory("x-foo", [("a", "1")], accept=lambda params: not params)
        lenient = FakeClientFactory("x-foo", [("a", "2")])
        response = make_response(("Sec-WebSocket-Extensions", "x-foo; a"))
        extensions, _ = process(response, [strict, lenient])
        assert extensions == [FakeExtension("x-foo", [("a", None)])]
        assert len(strict.calls) == len(lenient.calls) == 1

    def test_extension_accepted_twice(self) -> None:
        response = make_response(("Sec-WebSocket-Extensions", "x-foo, x-foo"))
        with pytest.raises(NegotiationError, match="unsupported extension: name = x-foo"):
            process(response, [FakeClientFactory("x-foo")])
        # Unless offered twice.
        extensions, _ = process(response, [FakeClientFactory("x-foo"), FakeClientFactory("x-foo")])
        assert len(extensions) == 2

    def test_extension_format(self) -> None:
        response = make_response(("Sec-WebSocket-Extensions", "x-foo;"))
        with pytest.raises(InvalidHeaderFormat):
            process(response, [FakeClientFactory("x-foo")])

    # Subprotocols.

    def test_subprotocol(self) -> None:
        response = make_response(("Sec-WebSocket-Protocol", "superchat"))
        assert process(response, subprotocols=["chat", "superchat"]) == ([], "superchat")

    def test_subprotocol_offered_but_not_selected(self) -> None:
        assert process(make_response(), subprotocols=["chat"]) == ([], None)

    def test_subprotocol_not_offered(self) -> None:
        response = make_response(("Sec-WebSocket-Protocol", "other"))
        with pytest.raises(NegotiationError) as exc_info:
            process(response, subprotocols=["chat"])
        assert str(exc_info.value) == "unsupported subprotocol: other"

    @pytest.mark.parametrize("subprotocols", [None, []])
    def test_subprotocol_while_none_offered(self, subprotocols: list[str] | None) -> None:
        response = make_response(("Sec-WebSocket-Protocol", "chat"))
        with pytest.raises(NegotiationError) as exc_info:
            process(response, subprotocols=subprotocols)
        assert str(exc_info.value) == "no subprotocols supported"

    @pytest.mark.parametrize("values", [["chat, superchat"], ["chat", "superchat"]])
    def test_several_subprotocols(self, values: list[str]) -> None:
        response = with_header(make_response(), "Sec-WebSocket-Protocol", *values)
        with pytest.raises(InvalidHeader) as exc_info:
            process(response, subprotocols=["chat", "superchat"])
        assert type(exc_info.value) is InvalidHeader
        assert str(exc_info.value) == (
            "invalid Sec-WebSocket-Protocol header: multiple values: chat, superchat"
        )

    def test_subprotocol_format(self) -> None:
        response = make_response(("Sec-WebSocket-Protocol", "a b"))
        with pytest.raises(InvalidHeaderFormat):
            process(response, subprotocols=["a"])


# Server side.


class TestProcessRequest:
    def test_valid(self) -> None:
        assert process_request(valid_request()) == KEY

    def test_case_insensitive_tokens(self) -> None:
        request = replaced(valid_request(), "Upgrade", "WebSocket")
        request = replaced(request, "Connection", "keep-alive, UPGRADE")
        assert process_request(request) == KEY

    @pytest.mark.parametrize(
        ("name", "values", "exc_type", "message"),
        [
            ("Host", [], InvalidHeader, "missing Host header"),
            ("Host", ["a", "b"], InvalidHeader, "invalid Host header: multiple values"),
            ("Upgrade", [], InvalidUpgrade, "missing Upgrade header"),
            ("Upgrade", ["h2c"], InvalidUpgrade, "invalid Upgrade header: h2c"),
            ("Connection", [], InvalidUpgrade, "missing Connection header"),
            ("Connection", ["keep-alive"], InvalidUpgrade, "invalid Connection header: keep-alive"),
            ("Sec-WebSocket-Key", [], InvalidHeader, "missing Sec-WebSocket-Key header"),
            (
                "Sec-WebSocket-Key",
                [KEY, KEY],
                InvalidHeader,
                "invalid Sec-WebSocket-Key header: multiple values",
            ),
            ("Sec-WebSocket-Key", [""], InvalidHeaderValue, "empty Sec-WebSocket-Key header"),
            (
                "Sec-WebSocket-Key",
                ["not base64!"],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: not base64!",
            ),
            (
                "Sec-WebSocket-Key",
                ["AAAAAAAAAAAAAAAAAAAA"],  # 15 bytes
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: AAAAAAAAAAAAAAAAAAAA",
            ),
            (
                "Sec-WebSocket-Key",
                ["AAAAAAAAAAAAAAAAAAAAAAAA"],  # 18 bytes
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: AAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            (
                "Sec-WebSocket-Key",
                ["dGhlIHNhbXBsZSBub25jZQ"],  # no padding
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: dGhlIHNhbXBsZSBub25jZQ",
            ),
            (
                "Sec-WebSocket-Key",
                ["dGhlIHNhbXBs ZSBub25jZQ=="],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: dGhlIHNhbXBs ZSBub25jZQ==",
            ),
            (
                "Sec-WebSocket-Key",
                ["dGhlIHNhbXBsZSBub25jZQ\xe9="],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: dGhlIHNhbXBsZSBub25jZQ\xe9=",
            ),
            ("Sec-WebSocket-Version", [], InvalidHeader, "missing Sec-WebSocket-Version header"),
            (
                "Sec-WebSocket-Version",
                ["13", "13"],
                InvalidHeader,
                "invalid Sec-WebSocket-Version header: multiple values",
            ),
            (
                "Sec-WebSocket-Version",
                ["8"],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Version header: 8",
            ),
            (
                "Sec-WebSocket-Version",
                ["13, 8"],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Version header: 13, 8",
            ),
        ],
    )
    def test_invalid(
        self, name: str, values: list[str], exc_type: type[InvalidHeader], message: str
    ) -> None:
        request = replaced(valid_request(), name, *values)
        with pytest.raises(exc_type) as exc_info:
            process_request(request)
        assert type(exc_info.value) is exc_type
        assert str(exc_info.value) == message

    def test_plain_http_request_means_426(self) -> None:
        # What a browser sends when it opens a WebSocket URL as a page.
        request = make_request(("Host", "example.com"), ("Connection", "keep-alive"))
        with pytest.raises(InvalidUpgrade) as exc_info:
            process_request(request)
        assert str(exc_info.value) == "invalid Connection header: keep-alive"
        assert rejection_status(exc_info.value) == http.HTTPStatus.UPGRADE_REQUIRED

    def test_unsupported_version_means_426(self) -> None:
        with pytest.raises(InvalidHeaderValue) as exc_info:
            process_request(replaced(valid_request(), "Sec-WebSocket-Version", "8"))
        assert exc_info.value.name == "Sec-WebSocket-Version"
        status = rejection_status(exc_info.value)
        assert status == http.HTTPStatus.UPGRADE_REQUIRED
        response = build_reject_response(status, "Unsupported version.\n")
        assert response.headers["Sec-WebSocket-Version"] == "13"


class TestCheckOrigin:
    def test_no_check(self) -> None:
        check_origin(valid_request(("Origin", "https://evil.example")), None)
        check_origin(valid_request(), None)

    def test_allowed(self) -> None:
        origins = ["https://a.example", "https://b.example"]
        check_origin(valid_request(("Origin", "https://b.example")), origins)

    def test_missing_allowed(self) -> None:
        check_origin(valid_request(), [None, "https://a.example"])

    def test_missing(self) -> None:
        with pytest.raises(InvalidOrigin) as exc_info:
            check_origin(valid_request(), ["https://a.example"])
        assert str(exc_info.value) == "missing Origin header"

    def test_forbidden(self) -> None:
        with pytest.raises(InvalidOrigin) as exc_info:
            check_origin(valid_request(("Origin", "https://evil.example")), ["https://a.example"])
        assert str(exc_info.value) == "invalid Origin header: https://evil.example"
        assert exc_info.value.value == "https://evil.example"

    def test_empty_list(self) -> None:
        with pytest.raises(InvalidOrigin):
            check_origin(valid_request(("Origin", "https://a.example")), [])

    def test_repeated(self) -> None:
        request = valid_request(("Origin", "https://a.example"), ("Origin", "https://a.example"))
        with pytest.raises(InvalidHeader) as exc_info:
            check_origin(request, ["https://a.example"])
        assert str(exc_info.value) == "invalid Origin header: multiple values"


def extensions_request(*values: str) -> Request:
    return valid_request(*[("Sec-WebSocket-Extensions", value) for value in values])


class TestNegotiateExtensions:
    def test_nothing_offered(self) -> None:
        assert negotiate_extensions(valid_request(), [FakeServerFactory("x-foo")]) == (None, [])

    @pytest.mark.parametrize("factories", [None, []])
    def test_nothing_supported(self, factories: list[ServerExtensionFactory] | None) -> None:
        assert negotiate_extensions(extensions_request("x-foo"), factories) == (None, [])

    def test_accept(self) -> None:
        foo = FakeServerFactory("x-foo", response=[("a", "2")])
        header, extensions = negotiate_extensions(extensions_request("x-foo; a=1"), [foo])
        assert header == "x-foo; a=2"
        assert extensions == [FakeExtension("x-foo", [("a", "2")])]
        assert foo.calls == [([("a", "1")], [])]

    def test_client_order(self) -> None:
        foo, bar = FakeServerFactory("x-foo"), FakeServerFactory("x-bar")
        request = extensions_request("x-bar; b", "x-foo")
        header, extensions = negotiate_extensions(request, [foo, bar])
        assert header == "x-bar; b, x-foo"
        assert extensions == [FakeExtension("x-bar", [("b", None)]), FakeExtension("x-foo", [])]
        assert foo.calls == [([], [FakeExtension("x-bar", [("b", None)])])]

    def test_declined_offer_is_skipped(self) -> None:
        foo = FakeServerFactory("x-foo", accept=lambda params: ("ok", None) in params)
        request = extensions_request("x-foo; bad, x-foo; ok")
        header, extensions = negotiate_extensions(request, [foo])
        assert header == "x-foo; ok"
        assert extensions == [FakeExtension("x-foo", [("ok", None)])]

    def test_everything_declined(self) -> None:
        foo = FakeServerFactory("x-foo", accept=lambda params: False)
        assert negotiate_extensions(extensions_request("x-foo, x-foo; a"), [foo]) == (None, [])
        assert len(foo.calls) == 2

    def test_at_most_one_per_name(self) -> None:
        foo = FakeServerFactory("x-foo")
        header, extensions = negotiate_extensions(extensions_request("x-foo; a, x-foo; b"), [foo])
        assert header == "x-foo; a"
        assert len(extensions) == 1
        assert len(foo.calls) == 1

    def test_factories_tried_in_order(self) -> None:
        picky = FakeServerFactory("x-foo", response=[("picky", None)], accept=lambda p: bool(p))
        easy = FakeServerFactory("x-foo", response=[("easy", None)])
        assert negotiate_extensions(extensions_request("x-foo"), [picky, easy])[0] == "x-foo; easy"
        assert negotiate_extensions(extensions_request("x-foo; a"), [picky, easy])[0] == (
            "x-foo; picky"
        )

    def test_unknown_extension_ignored(self) -> None:
        request = extensions_request("x-unknown, x-foo")
        assert negotiate_extensions(request, [FakeServerFactory("x-foo")])[0] == "x-foo"

    def test_invalid_header(self) -> None:
        with pytest.raises(InvalidHeaderFormat):
            negotiate_extensions(extensions_request('x-foo; a="b c"'), [FakeServerFactory("x")])


def subprotocol_request(*values: str) -> Request:
    return valid_request(*[("Sec-WebSocket-Protocol", value) for value in values])


class TestNegotiateSubprotocol:
    def test_server_preference(self) -> None:
        request = subprotocol_request("chat, superchat")
        assert negotiate_subprotocol(request, ["superchat", "chat"]) == "superchat"
        assert negotiate_subprotocol(request, ["chat", "superchat"]) == "chat"

    def test_several_headers(self) -> None:
        request = subprotocol_request("chat", "superchat")
        assert negotiate_subprotocol(request, ["superchat"]) == "superchat"

    def test_no_match(self) -> None:
        assert negotiate_subprotocol(subprotocol_request("chat"), ["other"]) is None

    def test_nothing_offered(self) -> None:
        assert negotiate_subprotocol(valid_request(), ["chat"]) is None

    @pytest.mark.parametrize("available", [None, []])
    def test_nothing_available(self, available: list[str] | None) -> None:
        assert negotiate_subprotocol(subprotocol_request("chat"), available) is None

    def test_select(self) -> None:
        offers: list[Sequence[str]] = []

        def select(offered: Sequence[str]) -> str | None:
            offers.append(offered)
            return offered[-1] if offered else None

        request = subprotocol_request("a, b", "c")
        assert negotiate_subprotocol(request, ["a"], select) == "c"
        assert negotiate_subprotocol(valid_request(), ["a"], select) is None
        assert offers == [["a", "b", "c"], []]

    def test_select_not_offered(self) -> None:
        with pytest.raises(NegotiationError) as exc_info:
            negotiate_subprotocol(subprotocol_request("a"), None, lambda offered: "b")
        assert str(exc_info.value) == "selected subprotocol wasn't offered: b"

    def test_select_rejects(self) -> None:
        def select(offered: Sequence[str]) -> str | None:
            raise NegotiationError("missing subprotocol")

        with pytest.raises(NegotiationError, match="missing subprotocol"):
            negotiate_subprotocol(valid_request(), None, select)

    def test_invalid_header(self) -> None:
        with pytest.raises(InvalidHeaderFormat):
            negotiate_subprotocol(subprotocol_request("a b"), ["a"])


class TestBuildAcceptResponse:
    def test_minimal(self) -> None:
        response = build_accept_response(KEY, server_header=None)
        assert response.serialize() == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"\r\n"
        )

    def test_everything(self) -> None:
        response = build_accept_response(
            KEY,
            subprotocol="chat",
            extensions_header="x-foo; a=1",
            additional_headers={"Set-Cookie": "a=b"},
        )
        assert response.status_code == 101
        assert response.reason_phrase == "Switching Protocols"
        assert response.body == b""
        assert response.headers.items() == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
            ("Sec-WebSocket-Extensions", "x-foo; a=1"),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Set-Cookie", "a=b"),
            ("Server", SERVER),
        ]

    def test_server_in_additional_headers(self) -> None:
        response = build_accept_response(KEY, additional_headers=[("Server", "mine")])
        assert response.headers.get_all("Server") == ["mine"]

    def test_invalid_subprotocol(self) -> None:
        with pytest.raises(ValueError, match="invalid subprotocol"):
            build_accept_response(KEY, subprotocol="a, b")


class TestBuildRejectResponse:
    def test_reject(self) -> None:
        response = build_reject_response(http.HTTPStatus.FORBIDDEN, "Go away.\n")
        assert response.serialize() == (
            b"HTTP/1.1 403 Forbidden\r\n"
            b"Connection: close\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 9\r\n"
            b"Server: " + SERVER.encode() + b"\r\n"
            b"\r\n"
            b"Go away.\n"
        )

    def test_int_status_and_utf8_body(self) -> None:
        response = build_reject_response(400, "\u263a", server_header=None)
        assert response.status_code == 400
        assert type(response.status_code) is int
        assert response.reason_phrase == "Bad Request"
        assert response.body == b"\xe2\x98\xba"
        assert response.headers["Content-Length"] == "3"
        assert "Server" not in response.headers

    def test_lone_surrogate_in_text(self) -> None:
        assert build_reject_response(400, "a\udcffb").body == b"a\\udcffb"

    def test_unknown_status(self) -> None:
        response = build_reject_response(499, "", server_header=None)
        assert response.serialize() == (
            b"HTTP/1.1 499 \r\n"
            b"Connection: close\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        )

    @pytest.mark.parametrize("status", [99, 600, 0])
    def test_invalid_status(self, status: int) -> None:
        with pytest.raises(ValueError, match="invalid status code"):
            build_reject_response(status, "")

    def test_426(self) -> None:
        response = build_reject_response(426, "Upgrade required.\n", server_header=None)
        assert response.headers.items() == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade, close"),
            ("Sec-WebSocket-Version", "13"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "18"),
        ]

    def test_headers(self) -> None:
        response = build_reject_response(
            401,
            "<p>Nope</p>",
            headers={
                "WWW-Authenticate": 'Basic realm="x"',
                "Content-Type": "text/html",
                "Content-Length": "999",
                "Server": "mine",
            },
        )
        assert response.headers.items() == [
            ("Connection", "close"),
            ("Content-Type", "text/html"),
            ("Content-Length", "11"),
            ("WWW-Authenticate", 'Basic realm="x"'),
            ("Server", "mine"),
        ]

    def test_round_trip(self) -> None:
        response = build_reject_response(404, "Not here.\n")
        data = response.serialize()
        assert parse_response(data) == (response, len(data))


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidUpgrade("Upgrade", "h2c"), 426),
        (InvalidUpgrade("Connection"), 426),
        (InvalidHeaderValue("Sec-WebSocket-Version", "8"), 426),
        (InvalidHeaderValue("Sec-WebSocket-Key", "x"), 400),
        (InvalidHeader("Sec-WebSocket-Version"), 400),
        (InvalidOrigin("https://evil.example"), 403),
        (InvalidHeader("Host"), 400),
        (InvalidHeaderFormat("Upgrade", "expected token", "", 0), 400),
        (NegotiationError("no"), 400),
        (InvalidMessage("bad"), 400),
        (SecurityError("big"), 400),
        (RuntimeError("bug"), 500),
    ],
)
def test_rejection_status(exc: Exception, status: int) -> None:
    assert rejection_status(exc) == status
    assert isinstance(rejection_status(exc), http.HTTPStatus)


# Both sides.


def test_handshake_round_trip() -> None:
    client_factories = [
        FakeClientFactory("x-foo", [("a", "1")]),
        FakeClientFactory("x-bar", [("b", None)]),
    ]
    server_factories = [FakeServerFactory("x-bar"), FakeServerFactory("x-foo", [("a", "2")])]
    uri = parse_uri("wss://user:pass@example.com/chat")
    key = generate_key()

    request = build_request(
        uri,
        key=key,
        origin="https://example.com",
        extensions=client_factories,
        subprotocols=["v2", "v1"],
    )
    data = request.serialize()
    parsed_request = parse_request(data)
    assert parsed_request == (request, len(data))
    request = parsed_request[0]

    assert process_request(request) == key
    check_origin(request, ["https://example.com"])
    extensions_header, server_extensions = negotiate_extensions(request, server_factories)
    subprotocol = negotiate_subprotocol(request, ["v1", "v2"])
    assert subprotocol == "v1"
    response = build_accept_response(
        key, subprotocol=subprotocol, extensions_header=extensions_header
    )
    data = response.serialize() + b"\x81\x00"
    parsed_response = parse_response(data)
    assert parsed_response is not None
    assert parsed_response[1] == len(data) - 2
    client_extensions, client_subprotocol = process_response(
        parsed_response[0], key=key, extensions=client_factories, subprotocols=["v2", "v1"]
    )
    assert client_subprotocol == "v1"
    expected = [FakeExtension("x-foo", [("a", "2")]), FakeExtension("x-bar", [("b", None)])]
    assert client_extensions == expected
    assert server_extensions == expected


def test_client_rejects_another_key() -> None:
    response = build_accept_response(generate_key())
    with pytest.raises(InvalidHeaderValue, match="invalid Sec-WebSocket-Accept header"):
        process_response(response, key=generate_key(), extensions=None, subprotocols=None)


def test_uri_without_default_port() -> None:
    request = build_request(WebSocketURI(True, "example.com", 8443, "", ""), key=KEY)
    assert request.headers["Host"] == "example.com:8443"
    assert request.path == "/"
