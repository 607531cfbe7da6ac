"""ServerProtocol: receiving the opening handshake request and answering it; end to end."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anyws.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
    WebSocketException,
)
from anyws.sansio import (
    SEND_EOF,
    ClientProtocol,
    Close,
    Event,
    Frame,
    Headers,
    Opcode,
    Protocol,
    Request,
    Response,
    ServerProtocol,
    Side,
    State,
)
from anyws.sansio._handshake import SERVER
from anyws.sansio.extensions import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)

from .helpers import raw_frame, split_every


TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

# RFC 6455, section 1.3: the example key and the accept value it calls for.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

DEFAULT_HEADERS = {
    "Host": "server.example.com",
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


# Helpers ---------------------------------------------------------------------


def request_bytes(
    headers: dict[str, str | None] | None = None,
    extra: Sequence[str] = (),
    *,
    path: str = "/chat",
) -> bytes:
    """A request with the default headers, changed by ``headers`` (``None`` drops one).

    The lines in ``extra`` come last.
    """
    fields: dict[str, str | None] = dict(DEFAULT_HEADERS)
    fields.update(headers or {})
    lines = [f"{name}: {value}" for name, value in fields.items() if value is not None]
    lines += extra
    text = f"GET {path} HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return text.encode("latin-1")


REQUEST = request_bytes()

ACCEPT_RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n"
    f"Server: {SERVER}\r\n"
    "\r\n"
).encode()


def refusal_bytes(status: int, phrase: str, body: str, *, upgrade: bool = False) -> bytes:
    """The exact bytes of a refusal built by the server."""
    encoded = body.encode()
    head = f"HTTP/1.1 {status} {phrase}\r\n"
    if upgrade:
        head += "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n"
    else:
        head += "Connection: close\r\n"
    head += (
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(encoded)}\r\n"
        f"Server: {SERVER}\r\n"
        "\r\n"
    )
    return head.encode() + encoded


def client_frame(opcode: int, data: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a client sends it: masked."""
    return raw_frame(opcode, data, **kwargs)  # type: ignore[arg-type]


def received(protocol: ServerProtocol, data: bytes = REQUEST) -> Request:
    """Feed a request and return the Request event."""
    protocol.receive_data(data)
    [event] = protocol.events_received()
    assert isinstance(event, Request)
    return event


def parse_sent(data: bytes, side: Side = Side.CLIENT) -> list[Event]:
    """Parse frames a server sent, as a client does."""
    peer = Protocol(side, max_size=None)
    peer.receive_data(data)
    return peer.events_received()


class XorExtension(Extension):
    """A test extension: flips every payload bit and marks the frames with RSV1."""

    def __init__(self, name: str, params: Sequence[ExtensionParameter]) -> None:
        self.name = name
        self.params = list(params)

    def encode(self, frame: Frame) -> Frame:
        return frame._replace(data=bytes(b ^ 0xFF for b in frame.data), rsv1=True)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if not frame.rsv1:
            return frame
        return frame._replace(data=bytes(b ^ 0xFF for b in frame.data), rsv1=False)


class FakeServerFactory(ServerExtensionFactory):
    """Accepts ``name`` and echoes the parameters; declines an offer with ``decline``."""

    def __init__(self, name: str = "x-xor") -> None:
        self.name = name
        self.calls: list[tuple[list[ExtensionParameter], list[Extension]]] = []
        self.created: list[XorExtension] = []

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        self.calls.append((list(params), list(accepted_extensions)))
        if ("decline", None) in params:
            raise NegotiationError("declined")
        extension = XorExtension(self.name, params)
        self.created.append(extension)
        return list(params), extension


class FakeClientFactory(ClientExtensionFactory):
    def __init__(self, name: str = "x-xor") -> None:
        self.name = name

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        return [("flip", None)]

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        return XorExtension(self.name, params)


def assert_refused(protocol: ServerProtocol, response: Response) -> None:
    """Send a refusal: the server writes it, half-closes, and ignores what follows."""
    assert protocol.close_expected()
    protocol.send_response(response)
    assert protocol.data_to_send() == [response.serialize(), SEND_EOF]
    assert protocol.response is response
    assert protocol.state is State.CONNECTING
    assert protocol.close_expected()
    assert protocol.extensions == []
    with pytest.raises(InvalidState):
        protocol.send_text("no")
    protocol.receive_data(client_frame(TEXT, b"ignored"))
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []
    protocol.receive_eof()
    assert protocol.state is State.CLOSED
    assert protocol.data_to_send() == []


# Receiving the request ---------------------------------------------------------


class TestReceiveRequest:
    def test_request_event(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(REQUEST)
        [event] = protocol.events_received()
        assert event == Request("/chat", Headers(DEFAULT_HEADERS))
        assert [name for name, _ in event.headers.items()] == list(DEFAULT_HEADERS)
        assert protocol.request is event
        assert protocol.state is State.CONNECTING
        assert protocol.handshake_exc is None
        assert not protocol.close_expected()
        assert protocol.data_to_send() == []

    def test_request_byte_by_byte(self) -> None:
        protocol = ServerProtocol()
        for byte in split_every(REQUEST[:-1], 1):
            protocol.receive_data(byte)
            assert protocol.events_received() == []
        protocol.receive_data(REQUEST[-1:])
        [event] = protocol.events_received()
        assert isinstance(event, Request)
        assert event.path == "/chat"
        assert event.headers["Sec-WebSocket-Key"] == KEY
        assert protocol.handshake_exc is None
        assert protocol.data_to_send() == []

    @pytest.mark.parametrize("size", [2, 3, 5, 16, 100])
    def test_request_in_chunks(self, size: int) -> None:
        protocol = ServerProtocol()
        for chunk in split_every(REQUEST, size):
            protocol.receive_data(chunk)
        assert protocol.events_received() == [Request("/chat", Headers(DEFAULT_HEADERS))]

    def test_frames_after_the_request_wait_for_the_response(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(REQUEST + client_frame(TEXT, b"early"))
        assert [type(event) for event in protocol.events_received()] == [Request]
        protocol.receive_data(client_frame(PING, b"p"))
        assert protocol.events_received() == []
        assert protocol.data_to_send() == []
        assert protocol.state is State.CONNECTING

    def test_header_values_keep_latin_1(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol, request_bytes(extra=["X-Name: caf\xe9"]))
        assert request.headers["X-Name"] == "caf\xe9"

    def test_request_target(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol, request_bytes(path="/a/b?c=d&e"))
        assert request.path == "/a/b?c=d&e"


# Accepting ---------------------------------------------------------------------


class TestAccept:
    def test_rfc_example_accept_value(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol))
        assert response == Response(
            101,
            "Switching Protocols",
            Headers(
                [
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", ACCEPT),
                    ("Server", SERVER),
                ]
            ),
        )
        assert response.serialize() == ACCEPT_RESPONSE
        # Building the response changes nothing yet.
        assert protocol.state is State.CONNECTING
        assert protocol.data_to_send() == []
        assert protocol.handshake_exc is None
        assert protocol.response is None

    def test_send_response_opens(self) -> None:
        protocol = ServerProtocol()
        protocol.send_response(protocol.accept(received(protocol)))
        assert protocol.state is State.OPEN
        assert protocol.data_to_send() == [ACCEPT_RESPONSE]
        assert protocol.events_received() == []
        assert protocol.handshake_exc is None
        assert not protocol.close_expected()
        protocol.send_text("Hello")
        assert protocol.data_to_send() == [b"\x81\x05Hello"]

    def test_server_header(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol)
        assert "Server" not in protocol.accept(request, server_header=None).headers
        custom = protocol.accept(request, server_header="srv/1")
        assert custom.headers.get_all("Server") == ["srv/1"]

    def test_additional_headers(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(
            received(protocol),
            additional_headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        )
        assert response.headers.items()[3:] == [
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Server", SERVER),
        ]

    def test_additional_server_header_replaces_the_default(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol), additional_headers={"Server": "x"})
        assert response.headers.get_all("Server") == ["x"]

    @pytest.mark.parametrize(
        ("headers", "extra"),
        [
            ({"Upgrade": "WebSocket", "Connection": "upgrade"}, []),
            ({"Connection": "keep-alive, Upgrade"}, []),
            ({"Upgrade": "h2c, websocket"}, []),
            ({"Connection": "keep-alive"}, ["Connection: Upgrade"]),
            ({}, ["Origin: https://anything.example", "User-Agent: x"]),
        ],
        ids=["case", "connection-list", "upgrade-list", "connection-twice", "extra"],
    )
    def test_acceptable_variants(self, headers: dict[str, str | None], extra: list[str]) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol, request_bytes(headers, extra)))
        assert response.status_code == 101
        assert protocol.handshake_exc is None
        protocol.send_response(response)
        assert protocol.state is State.OPEN

    def test_custom_101_without_accept(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        response = Response(101, "Switching Protocols", Headers(Upgrade="websocket"))
        protocol.send_response(response)
        assert protocol.state is State.OPEN
        assert protocol.data_to_send() == [response.serialize()]


class TestSubprotocols:
    @pytest.mark.parametrize(
        ("available", "offered", "selected"),
        [
            (["chat", "superchat"], "superchat, chat", "chat"),
            (["superchat", "chat"], "chat, superchat", "superchat"),
            (["chat"], "other, chat", "chat"),
            ([], "chat", None),
        ],
    )
    def test_server_preference(
        self, available: list[str], offered: str | None, selected: str | None
    ) -> None:
        protocol = ServerProtocol(subprotocols=available)
        request = received(protocol, request_bytes({"Sec-WebSocket-Protocol": offered}))
        response = protocol.accept(request)
        assert response.status_code == 101
        assert protocol.subprotocol == selected
        expected = [] if selected is None else [selected]
        assert response.headers.get_all("Sec-WebSocket-Protocol") == expected

    @pytest.mark.parametrize(
        ("offered", "error"),
        [
            ("other", "invalid subprotocol; expected one of chat.v2, chat.v1"),
            (None, "missing subprotocol"),
        ],
    )
    def test_none_acceptable_is_400(self, offered: str | None, error: str) -> None:
        """A server that names subprotocols requires one, as websockets 17 does."""
        protocol = ServerProtocol(subprotocols=["chat.v2", "chat.v1"])
        request = received(protocol, request_bytes({"Sec-WebSocket-Protocol": offered}))
        response = protocol.accept(request)
        assert response.status_code == 400
        assert response.body == f"Failed to open a WebSocket connection: {error}.\n".encode()
        assert str(protocol.handshake_exc) == error
        assert protocol.subprotocol is None

    def test_select_subprotocol_may_go_on_without_one(self) -> None:
        protocol = ServerProtocol(
            subprotocols=["chat"], select_subprotocol=lambda protocol, offered: None
        )
        response = protocol.accept(received(protocol, request_bytes()))
        assert response.status_code == 101
        assert protocol.subprotocol is None

    def test_offers_in_several_headers(self) -> None:
        protocol = ServerProtocol(subprotocols=["b"])
        request = received(
            protocol,
            request_bytes(extra=["Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b"]),
        )
        protocol.accept(request)
        assert protocol.subprotocol == "b"

    def test_select_subprotocol_override(self) -> None:
        calls: list[list[str]] = []

        def select(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
            assert protocol.request is request  # websockets' signature: protocol first
            calls.append(list(offered))
            return offered[-1]

        protocol = ServerProtocol(subprotocols=["chat"], select_subprotocol=select)
        request = received(protocol, request_bytes({"Sec-WebSocket-Protocol": "chat, v2, v3"}))
        response = protocol.accept(request)
        assert calls == [["chat", "v2", "v3"]]
        assert protocol.subprotocol == "v3"
        assert response.headers.get_all("Sec-WebSocket-Protocol") == ["v3"]

    def test_select_subprotocol_none(self) -> None:
        protocol = ServerProtocol(subprotocols=["chat"], select_subprotocol=lambda _, offered: None)
        request = received(protocol, request_bytes({"Sec-WebSocket-Protocol": "chat"}))
        response = protocol.accept(request)
        assert response.status_code == 101
        assert protocol.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in response.headers

    def test_select_subprotocol_called_without_offers(self) -> None:
        calls: list[list[str]] = []

        def select(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
            calls.append(list(offered))
            return None

        protocol = ServerProtocol(select_subprotocol=select)
        protocol.accept(received(protocol))
        assert calls == [[]]

    def test_select_subprotocol_unoffered_refuses(self) -> None:
        protocol = ServerProtocol(select_subprotocol=lambda _, offered: "other")
        request = received(protocol, request_bytes({"Sec-WebSocket-Protocol": "chat"}))
        response = protocol.accept(request)
        message = "selected subprotocol wasn't offered: other"
        assert type(protocol.handshake_exc) is NegotiationError
        assert str(protocol.handshake_exc) == message
        assert response.serialize() == refusal_bytes(
            400, "Bad Request", f"Failed to open a WebSocket connection: {message}.\n"
        )
        assert protocol.subprotocol is None
        assert_refused(protocol, response)

    def test_select_subprotocol_raising_negotiation_error_refuses(self) -> None:
        def select(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
            raise NegotiationError("no acceptable subprotocol")

        protocol = ServerProtocol(select_subprotocol=select)
        response = protocol.accept(received(protocol))
        assert type(protocol.handshake_exc) is NegotiationError
        assert response.status_code == 400
        assert response.body == (
            b"Failed to open a WebSocket connection: no acceptable subprotocol.\n"
        )
        assert_refused(protocol, response)

    def test_subprotocol_in_end_to_end_handshake(self) -> None:
        client = ClientProtocol("ws://example.com/", subprotocols=["v1", "v2"])
        server = ServerProtocol(subprotocols=["v2", "v1"])
        handshake(client, server)
        assert client.subprotocol == server.subprotocol == "v2"


class TestExtensions:
    def test_accepted_extension(self) -> None:
        factory = FakeServerFactory()
        protocol = ServerProtocol(extensions=[factory])
        request = received(
            protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor; level=1; flag"})
        )
        response = protocol.accept(request)
        assert response.headers.get_all("Sec-WebSocket-Extensions") == ["x-xor; level=1; flag"]
        assert factory.calls == [([("level", "1"), ("flag", None)], [])]
        # Installed only once the 101 is sent.
        assert protocol.extensions == []
        protocol.send_response(response)
        assert protocol.extensions == factory.created
        assert len(factory.created) == 1

    def test_extension_applies_to_frames(self) -> None:
        protocol = ServerProtocol(extensions=[FakeServerFactory()])
        request = received(protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor"}))
        protocol.send_response(protocol.accept(request))
        protocol.data_to_send()
        protocol.receive_data(client_frame(TEXT, bytes(b ^ 0xFF for b in b"Hi"), rsv=4))
        assert protocol.events_received() == [Frame(TEXT, b"Hi")]
        protocol.send_text("Hi")
        assert protocol.data_to_send() == [b"\xc1\x02" + bytes(b ^ 0xFF for b in b"Hi")]

    def test_declined_offer_falls_back_to_the_next(self) -> None:
        factory = FakeServerFactory()
        protocol = ServerProtocol(extensions=[factory])
        request = received(
            protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor; decline, x-xor; a=1"})
        )
        response = protocol.accept(request)
        assert response.headers.get_all("Sec-WebSocket-Extensions") == ["x-xor; a=1"]
        assert [params for params, _ in factory.calls] == [[("decline", None)], [("a", "1")]]

    def test_every_offer_declined(self) -> None:
        protocol = ServerProtocol(extensions=[FakeServerFactory()])
        request = received(protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor; decline"}))
        response = protocol.accept(request)
        assert response.status_code == 101
        assert "Sec-WebSocket-Extensions" not in response.headers
        protocol.send_response(response)
        assert protocol.extensions == []

    def test_same_extension_accepted_once(self) -> None:
        factory = FakeServerFactory()
        protocol = ServerProtocol(extensions=[factory])
        request = received(protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor, x-xor"}))
        response = protocol.accept(request)
        assert response.headers.get_all("Sec-WebSocket-Extensions") == ["x-xor"]
        assert len(factory.calls) == 1

    def test_several_extensions_in_the_clients_order(self) -> None:
        first, second = FakeServerFactory("x-a"), FakeServerFactory("x-b")
        protocol = ServerProtocol(extensions=[first, second])
        request = received(
            protocol,
            request_bytes(
                {"Sec-WebSocket-Extensions": "x-b"}, ["Sec-WebSocket-Extensions: x-unknown, x-a"]
            ),
        )
        response = protocol.accept(request)
        assert response.headers.get_all("Sec-WebSocket-Extensions") == ["x-b, x-a"]
        assert first.calls == [([], second.created)]
        protocol.send_response(response)
        assert [ext.name for ext in protocol.extensions] == ["x-b", "x-a"]

    def test_offers_ignored_without_factories(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor"}))
        response = protocol.accept(request)
        assert "Sec-WebSocket-Extensions" not in response.headers

    def test_malformed_offer_refuses(self) -> None:
        protocol = ServerProtocol(extensions=[FakeServerFactory()])
        request = received(protocol, request_bytes({"Sec-WebSocket-Extensions": "x-xor; =1"}))
        response = protocol.accept(request)
        exc = protocol.handshake_exc
        assert type(exc) is InvalidHeaderFormat
        assert str(exc) == (
            "invalid Sec-WebSocket-Extensions header: expected token at 7 in x-xor; =1"
        )
        assert response.status_code == 400
        assert_refused(protocol, response)


class TestOrigin:
    @pytest.mark.parametrize(
        ("origins", "origin"),
        [
            (None, "https://anything.example"),
            (None, None),
            (["https://good.example"], "https://good.example"),
            (["https://a.example", "https://good.example"], "https://good.example"),
            ([None], None),
            (["https://good.example", None], None),
        ],
    )
    def test_allowed(self, origins: list[str | None] | None, origin: str | None) -> None:
        protocol = ServerProtocol(origins=origins)
        request = received(protocol, request_bytes({"Origin": origin}))
        response = protocol.accept(request)
        assert response.status_code == 101
        assert protocol.handshake_exc is None

    @pytest.mark.parametrize(
        ("origins", "origin", "message"),
        [
            (
                ["https://good.example"],
                "https://evil.example",
                "invalid Origin header: https://evil.example",
            ),
            (
                ["https://good.example"],
                "https://GOOD.example",
                "invalid Origin header: https://GOOD.example",
            ),
            (["https://good.example"], None, "missing Origin header"),
            ([None], "https://good.example", "invalid Origin header: https://good.example"),
            ([], None, "missing Origin header"),
        ],
    )
    def test_forbidden(self, origins: list[str | None], origin: str | None, message: str) -> None:
        protocol = ServerProtocol(origins=origins)
        response = protocol.accept(received(protocol, request_bytes({"Origin": origin})))
        exc = protocol.handshake_exc
        assert type(exc) is InvalidOrigin
        assert str(exc) == message
        assert response.serialize() == refusal_bytes(
            403, "Forbidden", f"Failed to open a WebSocket connection: {message}.\n"
        )
        assert_refused(protocol, response)

    def test_repeated_origin(self) -> None:
        protocol = ServerProtocol(origins=["https://good.example"])
        request = received(
            protocol,
            request_bytes({"Origin": "https://good.example"}, ["Origin: https://good.example"]),
        )
        response = protocol.accept(request)
        exc = protocol.handshake_exc
        assert type(exc) is InvalidHeader
        assert str(exc) == "invalid Origin header: multiple values"
        assert response.status_code == 400
        assert_refused(protocol, response)


class TestRefusals:
    @pytest.mark.parametrize(
        ("headers", "extra", "status", "exc_type", "message"),
        [
            ({"Upgrade": None}, [], 426, InvalidUpgrade, "missing Upgrade header"),
            ({"Upgrade": "h2c"}, [], 426, InvalidUpgrade, "invalid Upgrade header: h2c"),
            ({"Connection": None}, [], 426, InvalidUpgrade, "missing Connection header"),
            (
                {"Connection": "keep-alive"},
                [],
                426,
                InvalidUpgrade,
                "invalid Connection header: keep-alive",
            ),
            (
                {"Connection": None, "Upgrade": None},
                [],
                426,
                InvalidUpgrade,
                "missing Connection header",
            ),
            (
                {"Sec-WebSocket-Version": "8"},
                [],
                426,
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Version header: 8",
            ),
            (
                {"Sec-WebSocket-Version": "13, 8"},
                [],
                426,
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Version header: 13, 8",
            ),
            (
                {"Sec-WebSocket-Version": None},
                [],
                400,
                InvalidHeader,
                "missing Sec-WebSocket-Version header",
            ),
            (
                {},
                ["Sec-WebSocket-Version: 13"],
                400,
                InvalidHeader,
                "invalid Sec-WebSocket-Version header: multiple values",
            ),
            (
                {"Sec-WebSocket-Key": None},
                [],
                400,
                InvalidHeader,
                "missing Sec-WebSocket-Key header",
            ),
            (
                {"Sec-WebSocket-Key": "not base64!"},
                [],
                400,
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: not base64!",
            ),
            (
                # 15 bytes, not 16.
                {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"},
                [],
                400,
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: AAAAAAAAAAAAAAAAAAAA",
            ),
            (
                {"Sec-WebSocket-Key": "\xe9" * 24},
                [],
                400,
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Key header: " + "\xe9" * 24,
            ),
            (
                {},
                [f"Sec-WebSocket-Key: {KEY}"],
                400,
                InvalidHeader,
                "invalid Sec-WebSocket-Key header: multiple values",
            ),
            ({"Host": None}, [], 400, InvalidHeader, "missing Host header"),
            (
                {},
                ["Host: other.example"],
                400,
                InvalidHeader,
                "invalid Host header: multiple values",
            ),
            (
                {"Connection": "Upgrade;"},
                [],
                400,
                InvalidHeaderFormat,
                "invalid Connection header: expected comma at 7 in Upgrade;",
            ),
            (
                {"Sec-WebSocket-Protocol": "chat, "},
                [],
                101,
                None,
                "",
            ),
            (
                {"Sec-WebSocket-Protocol": "a b"},
                [],
                400,
                InvalidHeaderFormat,
                "invalid Sec-WebSocket-Protocol header: expected comma at 2 in a b",
            ),
        ],
        ids=[
            "no-upgrade",
            "upgrade-h2c",
            "no-connection",
            "connection-keep-alive",
            "neither",
            "version-8",
            "version-list",
            "no-version",
            "two-versions",
            "no-key",
            "key-not-base64",
            "key-15-bytes",
            "key-not-ascii",
            "two-keys",
            "no-host",
            "two-hosts",
            "connection-malformed",
            "subprotocol-trailing-comma-is-fine",
            "subprotocol-malformed",
        ],
    )
    def test_refused(
        self,
        headers: dict[str, str | None],
        extra: list[str],
        status: int,
        exc_type: type[Exception] | None,
        message: str,
    ) -> None:
        protocol = ServerProtocol(subprotocols=["chat"])
        response = protocol.accept(received(protocol, request_bytes(headers, extra)))
        assert response.status_code == status
        if exc_type is None:
            assert protocol.handshake_exc is None
            return
        exc = protocol.handshake_exc
        assert type(exc) is exc_type
        assert str(exc) == message
        body = f"Failed to open a WebSocket connection: {message}.\n"
        assert response.body == body.encode()
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Content-Length"] == str(len(body.encode()))
        if status == 426:
            assert response.reason_phrase == "Upgrade Required"
            assert response.headers["Upgrade"] == "websocket"
            assert response.headers["Connection"] == "Upgrade, close"
            assert response.headers["Sec-WebSocket-Version"] == "13"
        else:
            assert response.reason_phrase == "Bad Request"
            assert response.headers["Connection"] == "close"
            assert "Upgrade" not in response.headers
        # Nothing is queued until the refusal is sent.
        assert protocol.data_to_send() == []
        assert protocol.response is None
        assert_refused(protocol, response)

    def test_426_bytes(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol, request_bytes({"Upgrade": None})))
        assert response.serialize() == refusal_bytes(
            426,
            "Upgrade Required",
            "Failed to open a WebSocket connection: missing Upgrade header.\n",
            upgrade=True,
        )

    def test_426_for_wrong_version_bytes(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(
            received(protocol, request_bytes({"Sec-WebSocket-Version": "7"}))
        )
        assert response.serialize() == refusal_bytes(
            426,
            "Upgrade Required",
            "Failed to open a WebSocket connection: invalid Sec-WebSocket-Version header: 7.\n",
            upgrade=True,
        )

    def test_400_bytes(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol, request_bytes({"Host": None})))
        assert response.serialize() == refusal_bytes(
            400, "Bad Request", "Failed to open a WebSocket connection: missing Host header.\n"
        )

    def test_refusal_without_server_header(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(
            received(protocol, request_bytes({"Host": None})), server_header=None
        )
        assert "Server" not in response.headers

    def test_refusal_discards_buffered_frames(self) -> None:
        protocol = ServerProtocol(origins=[])
        protocol.receive_data(request_bytes() + client_frame(TEXT, b"buffered"))
        [request] = protocol.events_received()
        assert isinstance(request, Request)
        response = protocol.accept(request)
        assert_refused(protocol, response)

    def test_101_after_a_refused_accept_does_not_open(self) -> None:
        protocol = ServerProtocol(origins=[])
        request = received(protocol)
        protocol.accept(request)
        assert type(protocol.handshake_exc) is InvalidOrigin
        response = Response(101, "Switching Protocols", Headers(Upgrade="websocket"))
        protocol.send_response(response)
        assert protocol.state is State.CONNECTING
        assert type(protocol.handshake_exc) is InvalidOrigin
        assert protocol.data_to_send() == [response.serialize(), SEND_EOF]


class TestReject:
    def test_reject_builds_a_response(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        response = protocol.reject(404, "Not here.\n")
        assert (
            response.serialize()
            == (
                "HTTP/1.1 404 Not Found\r\n"
                "Connection: close\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: 10\r\n"
                f"Server: {SERVER}\r\n"
                "\r\n"
                "Not here.\n"
            ).encode()
        )
        # Building it changes nothing.
        assert protocol.handshake_exc is None
        assert not protocol.close_expected()
        assert protocol.data_to_send() == []

    def test_send_reject_sets_invalid_status(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        response = protocol.reject(503, "Try later.\n", headers={"Retry-After": "5"})
        assert response.headers["Retry-After"] == "5"
        protocol.send_response(response)
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response is response
        assert str(exc) == "server rejected WebSocket connection: HTTP 503"
        assert protocol.data_to_send() == [response.serialize(), SEND_EOF]
        assert protocol.state is State.CONNECTING
        assert protocol.close_expected()

    def test_reject_with_custom_headers_and_no_server(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        response = protocol.reject(
            401,
            "",
            headers={"WWW-Authenticate": 'Basic realm="x"', "Connection": "keep-alive"},
            server_header=None,
        )
        assert response.headers.items() == [
            ("Connection", "keep-alive"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "0"),
            ("WWW-Authenticate", 'Basic realm="x"'),
        ]
        assert response.reason_phrase == "Unauthorized"

    def test_reject_426_adds_upgrade(self) -> None:
        response = ServerProtocol().reject(426, "upgrade!")
        assert response.headers["Upgrade"] == "websocket"
        assert response.headers["Sec-WebSocket-Version"] == "13"

    def test_send_response_non_101_keeps_an_earlier_exception(self) -> None:
        protocol = ServerProtocol()
        protocol.accept(received(protocol, request_bytes({"Host": None})))
        protocol.send_response(protocol.reject(500, "custom"))
        assert type(protocol.handshake_exc) is InvalidHeader

    def test_reject_after_valid_accept(self) -> None:
        protocol = ServerProtocol(extensions=[FakeServerFactory()], subprotocols=["chat"])
        request = received(
            protocol,
            request_bytes({"Sec-WebSocket-Extensions": "x-xor", "Sec-WebSocket-Protocol": "chat"}),
        )
        protocol.accept(request)
        response = protocol.reject(403, "changed my mind")
        protocol.send_response(response)
        assert type(protocol.handshake_exc) is InvalidStatus
        assert protocol.extensions == []
        assert protocol.state is State.CONNECTING
        assert protocol.data_to_send() == [response.serialize(), SEND_EOF]

    def test_send_response_twice_raises(self) -> None:
        protocol = ServerProtocol()
        response = protocol.accept(received(protocol))
        protocol.send_response(response)
        protocol.data_to_send()
        with pytest.raises(InvalidState) as raised:
            protocol.send_response(response)
        assert type(raised.value) is InvalidState
        assert str(raised.value) == "response already sent"
        assert protocol.data_to_send() == []
        assert protocol.state is State.OPEN

    def test_send_response_twice_after_a_refusal_raises(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        protocol.send_response(protocol.reject(400, "no"))
        protocol.data_to_send()
        with pytest.raises(InvalidState, match="response already sent"):
            protocol.send_response(protocol.reject(400, "no"))
        assert protocol.data_to_send() == []


class TestBufferedFrames:
    def test_frames_sent_with_the_request_are_parsed_after_the_101(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(
            REQUEST + client_frame(TEXT, b"Hello") + client_frame(PING, b"p") + client_frame(BINARY)
        )
        [request] = protocol.events_received()
        assert isinstance(request, Request)
        protocol.send_response(protocol.accept(request))
        assert protocol.events_received() == [
            Frame(TEXT, b"Hello"),
            Frame(PING, b"p"),
            Frame(BINARY, b""),
        ]
        # The pong follows the 101.
        assert protocol.data_to_send() == [ACCEPT_RESPONSE, b"\x8a\x01p"]

    def test_frames_received_while_waiting_are_parsed_after_the_101(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol)
        frame = client_frame(TEXT, b"split")
        protocol.receive_data(frame[:4])
        protocol.receive_data(frame[4:] + client_frame(TEXT, b"more")[:3])
        assert protocol.events_received() == []
        protocol.send_response(protocol.accept(request))
        assert protocol.events_received() == [Frame(TEXT, b"split")]
        protocol.receive_data(client_frame(TEXT, b"more")[3:])
        assert protocol.events_received() == [Frame(TEXT, b"more")]

    def test_buffered_close_frame(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(REQUEST + client_frame(CLOSE, b"\x03\xe8"))
        [request] = protocol.events_received()
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        assert protocol.events_received() == [Frame(CLOSE, b"\x03\xe8")]
        assert protocol.state is State.CLOSING
        # The 101, the echoed close frame, then the server closes TCP.
        assert protocol.data_to_send() == [ACCEPT_RESPONSE, b"\x88\x02\x03\xe8", SEND_EOF]

    def test_buffered_invalid_frame_fails_after_the_101(self) -> None:
        protocol = ServerProtocol()
        # Unmasked: a client must mask.
        protocol.receive_data(REQUEST + client_frame(TEXT, b"x", masked=False))
        [request] = protocol.events_received()
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        assert protocol.events_received() == []
        assert str(protocol.parser_exc) == "incorrect masking"
        assert protocol.handshake_exc is None
        assert protocol.state is State.CLOSING
        assert protocol.data_to_send() == [
            ACCEPT_RESPONSE,
            b"\x88\x13\x03\xeaincorrect masking",
            SEND_EOF,
        ]

    def test_buffered_frames_go_through_the_extension(self) -> None:
        protocol = ServerProtocol(extensions=[FakeServerFactory()])
        protocol.receive_data(
            request_bytes({"Sec-WebSocket-Extensions": "x-xor"})
            + client_frame(BINARY, b"\xff\x00", rsv=4)
        )
        [request] = protocol.events_received()
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        assert protocol.events_received() == [Frame(BINARY, b"\x00\xff")]


class TestMalformedRequest:
    @pytest.mark.parametrize(
        ("data", "cause_type", "cause"),
        [
            (
                REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"),
                InvalidMessage,
                "unsupported HTTP version; expected HTTP/1.1: b'HTTP/1.0'",
            ),
            (
                REQUEST.replace(b"GET", b"POST"),
                InvalidMessage,
                "unsupported HTTP method; expected GET: b'POST'",
            ),
            (
                b"GET /chat\r\nHost: x\r\n\r\n",
                InvalidMessage,
                "invalid HTTP request line: b'GET /chat'",
            ),
            (
                request_bytes(extra=["X-Folded: a", " b"]),
                InvalidMessage,
                "obsolete line folding in HTTP request isn't supported",
            ),
            (
                request_bytes(extra=["X-Big: " + "a" * 8193]),
                SecurityError,
                "HTTP line exceeds limit of 8192 bytes",
            ),
            (
                request_bytes(extra=["X: y"] * 125),
                SecurityError,
                "more than 128 HTTP headers",
            ),
            (
                REQUEST.replace(b"\r\n", b"\n"),
                InvalidMessage,
                "bare LF in HTTP request",
            ),
            (
                request_bytes(extra=["No-Colon"]),
                InvalidMessage,
                "invalid HTTP header line: b'No-Colon'",
            ),
            (
                request_bytes(extra=["Bad Name: x"]),
                InvalidMessage,
                "invalid HTTP header name: b'Bad Name'",
            ),
            (
                request_bytes(extra=["Content-Length: 5"]) + b"hello",
                InvalidMessage,
                "unsupported request body",
            ),
            (
                request_bytes(extra=["Transfer-Encoding: chunked"]),
                InvalidMessage,
                "unsupported request body",
            ),
            (
                request_bytes(extra=["Content-Length: x"]),
                InvalidHeaderValue,
                "invalid Content-Length header: x",
            ),
        ],
        ids=[
            "http-1.0",
            "post",
            "no-version",
            "obs-fold",
            "huge-header",
            "many-headers",
            "bare-lf",
            "no-colon",
            "space-in-name",
            "body",
            "chunked",
            "bad-content-length",
        ],
    )
    def test_automatic_400(self, data: bytes, cause_type: type[Exception], cause: str) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(data)
        assert protocol.events_received() == []
        assert protocol.request is None
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc) == "did not receive a valid HTTP request"
        assert type(exc.__cause__) is cause_type
        assert str(exc.__cause__) == cause
        body = (
            "Failed to open a WebSocket connection: "
            f"did not receive a valid HTTP request: {cause}.\n"
        )
        expected = refusal_bytes(400, "Bad Request", body)
        assert protocol.data_to_send() == [expected, SEND_EOF]
        assert protocol.response is not None
        assert protocol.response.serialize() == expected
        assert protocol.state is State.CONNECTING
        assert protocol.close_expected()
        # Everything after is ignored; the response can't be sent again.
        protocol.receive_data(REQUEST)
        assert protocol.events_received() == []
        assert protocol.data_to_send() == []
        with pytest.raises(InvalidState, match="response already sent"):
            protocol.send_response(protocol.reject(400, "again"))
        protocol.receive_eof()
        assert protocol.state is State.CLOSED
        assert protocol.data_to_send() == []
        assert protocol.handshake_exc is exc

    def test_http_1_0_bytes(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")
        assert protocol.data_to_send() == [
            (
                "HTTP/1.1 400 Bad Request\r\n"
                "Connection: close\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: 135\r\n"
                f"Server: {SERVER}\r\n"
                "\r\n"
                "Failed to open a WebSocket connection: did not receive a valid HTTP request: "
                "unsupported HTTP version; expected HTTP/1.1: b'HTTP/1.0'.\n"
            ).encode(),
            SEND_EOF,
        ]

    def test_huge_header_fails_before_the_head_completes(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(b"GET / HTTP/1.1\r\nCookie: ")
        protocol.receive_data(b"a" * (8192 - len(b"Cookie: ")))
        assert protocol.handshake_exc is None
        protocol.receive_data(b"a")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert type(exc.__cause__) is SecurityError
        assert str(exc.__cause__) == "HTTP line exceeds limit of 8192 bytes"
        [response, eof] = protocol.data_to_send()
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert eof == SEND_EOF

    def test_huge_head_fails_before_it_completes(self) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(b"GET / HTTP/1.1\r\n")
        sent = 16
        while protocol.handshake_exc is None:
            line = b"Cookie: " + b"a" * 1000 + b"\r\n"
            protocol.receive_data(line)
            sent += len(line)
            assert sent < 65536 + len(line)
        exc = protocol.handshake_exc
        assert type(exc.__cause__) is SecurityError
        assert str(exc.__cause__) == "HTTP headers exceed limit of 65536 bytes"

    def test_binary_garbage(self) -> None:
        # A TLS ClientHello sent to a plain-text port.
        protocol = ServerProtocol()
        protocol.receive_data(bytes.fromhex("160301020001") + b"\r\r\n")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc.__cause__) == "bare CR in HTTP request"
        assert protocol.data_to_send()[-1] == SEND_EOF

    def test_malformed_request_byte_by_byte(self) -> None:
        protocol = ServerProtocol()
        data = request_bytes(extra=["X-Folded: a", " b"])
        for byte in split_every(data[:-1], 1):
            protocol.receive_data(byte)
            assert protocol.handshake_exc is None
        protocol.receive_data(data[-1:])
        assert type(protocol.handshake_exc) is InvalidMessage
        assert len(protocol.data_to_send()) == 2


class TestEOFDuringHandshake:
    @pytest.mark.parametrize(
        ("data", "cause"),
        [
            (b"", "connection closed while reading HTTP request line"),
            (b"GET /ch", "connection closed while reading HTTP request line"),
            (b"GET /chat HTTP/1.1\r\n", "connection closed while reading HTTP headers"),
            (REQUEST[:-2], "connection closed while reading HTTP headers"),
        ],
        ids=["nothing", "request-line", "after-request-line", "before-empty-line"],
    )
    def test_eof_before_a_complete_request(self, data: bytes, cause: str) -> None:
        protocol = ServerProtocol()
        if data:
            protocol.receive_data(data)
        protocol.receive_eof()
        assert protocol.events_received() == []
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc) == "did not receive a valid HTTP request"
        assert type(exc.__cause__) is EOFError
        assert str(exc.__cause__) == cause
        # No 400 on a closed connection: only the end of the stream.
        assert protocol.data_to_send() == [SEND_EOF]
        assert protocol.response is None
        assert protocol.state is State.CLOSED
        assert protocol.close_expected()
        protocol.receive_eof()
        protocol.receive_data(REQUEST)
        assert protocol.events_received() == []
        assert protocol.data_to_send() == []

    def test_eof_after_the_request(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        protocol.receive_eof()
        assert protocol.state is State.CLOSED
        assert protocol.handshake_exc is None
        assert protocol.data_to_send() == [SEND_EOF]

    def test_accepting_after_eof_does_not_reopen(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol)
        protocol.receive_eof()
        assert protocol.data_to_send() == [SEND_EOF]
        try:
            protocol.send_response(protocol.accept(request))
        except InvalidState:
            pass
        assert protocol.state is State.CLOSED
        assert protocol.data_to_send() == []
        with pytest.raises(InvalidState):
            protocol.send_text("after EOF")

    def test_rejecting_after_eof_queues_nothing_after_eof(self) -> None:
        protocol = ServerProtocol()
        received(protocol)
        protocol.receive_eof()
        try:
            protocol.send_response(protocol.reject(503, "bye"))
        except InvalidState:
            pass
        output = protocol.data_to_send()
        assert SEND_EOF not in output[:-1]
        assert output in ([], [SEND_EOF])


class TestStates:
    def test_created_open_skips_the_handshake(self) -> None:
        protocol = ServerProtocol(state=State.OPEN)
        protocol.receive_data(client_frame(TEXT, b"x"))
        assert protocol.events_received() == [Frame(TEXT, b"x")]
        assert protocol.request is None

    def test_accepting_after_fail_does_not_open(self) -> None:
        protocol = ServerProtocol()
        request = received(protocol)
        protocol.fail(1006)
        assert protocol.data_to_send() == [SEND_EOF]
        try:
            protocol.send_response(protocol.accept(request))
        except InvalidState:
            pass
        assert protocol.state is not State.OPEN
        assert SEND_EOF not in protocol.data_to_send()[:-1]


class TestLogging:
    def test_debug_logs_the_handshake(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("test.anyws.server")
        logger.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG, logger="test.anyws.server"):
            protocol = ServerProtocol(logger=logger, origins=[])
            protocol.send_response(protocol.accept(received(protocol)))
        messages = [record.getMessage() for record in caplog.records]
        assert "< GET /chat HTTP/1.1" in messages
        assert "< Host: server.example.com" in messages
        assert "! invalid handshake: missing Origin header" in messages
        assert "> HTTP/1.1 403 Forbidden" in messages
        assert "> Connection: close" in messages


# End to end ------------------------------------------------------------------


def pump(source: Protocol, target: Protocol, size: int | None = None) -> bool:
    """Move what ``source`` queued into ``target``, ``size`` bytes at a time; tell if any."""
    output = source.data_to_send()
    for data in output:
        if data == SEND_EOF:
            target.receive_eof()
        else:
            for chunk in [data] if size is None else split_every(data, size):
                target.receive_data(chunk)
    return bool(output)


def handshake(client: ClientProtocol, server: ServerProtocol, size: int | None = None) -> None:
    client.send_request(client.connect())
    pump(client, server, size)
    [request] = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    pump(server, client, size)
    [response] = client.events_received()
    assert isinstance(response, Response)
    assert response.status_code == 101
    assert client.state is State.OPEN
    assert server.state is State.OPEN


class TestEndToEnd:
    @pytest.mark.parametrize("size", [None, 1, 7], ids=["whole", "bytes", "chunks"])
    def test_client_closes(self, size: int | None) -> None:
        client = ClientProtocol("ws://example.com/chat")
        server = ServerProtocol()
        handshake(client, server, size)

        client.send_text("Hello")
        client.send_binary(b"\x00\x01\x02")
        pump(client, server, size)
        assert server.events_received() == [Frame(TEXT, b"Hello"), Frame(BINARY, b"\x00\x01\x02")]

        server.send_text("café")
        server.send_binary(b"\xff" * 200)
        pump(server, client, size)
        assert client.events_received() == [
            Frame(TEXT, "café".encode()),
            Frame(BINARY, b"\xff" * 200),
        ]

        client.send_ping(b"ping")
        pump(client, server, size)
        assert server.events_received() == [Frame(PING, b"ping")]
        pump(server, client, size)
        assert client.events_received() == [Frame(PONG, b"ping")]

        client.send_text("Hel", fin=False)
        client.send_continuation(b"lo", fin=True)
        pump(client, server, size)
        assert server.events_received() == [Frame(TEXT, b"Hel", fin=False), Frame(CONT, b"lo")]

        # The client starts the closing handshake...
        client.send_close(1000)
        assert client.state is State.CLOSING
        pump(client, server, size)
        assert server.events_received() == [Frame(CLOSE, b"\x03\xe8")]
        assert server.state is State.CLOSING
        # ... the server echoes it and closes TCP first ...
        server_output = server.data_to_send()
        assert server_output == [b"\x88\x02\x03\xe8", SEND_EOF]
        assert not client.eof_sent
        for data in server_output:
            if data == SEND_EOF:
                client.receive_eof()
            else:
                client.receive_data(data)
        assert client.events_received() == [Frame(CLOSE, b"\x03\xe8")]
        # ... then the client closes its side.
        assert client.state is State.CLOSED
        assert client.data_to_send() == [SEND_EOF]
        server.receive_eof()
        assert server.state is State.CLOSED
        assert server.data_to_send() == []

        for protocol in (client, server):
            assert protocol.close_code == 1000
            assert protocol.close_reason == ""
            assert protocol.handshake_exc is None
            assert type(protocol.close_exc) is ConnectionClosedOK
        assert str(server.close_exc) == "received 1000 (OK); then sent 1000 (OK)"
        assert str(client.close_exc) == "sent 1000 (OK); then received 1000 (OK)"

    def test_server_closes(self) -> None:
        client = ClientProtocol("ws://example.com/")
        server = ServerProtocol()
        handshake(client, server)
        server.send_close(1001, "restarting")
        pump(server, client)
        assert client.events_received() == [Frame(CLOSE, b"\x03\xe9restarting")]
        assert client.state is State.CLOSING
        # The client echoes, and waits for the server to close TCP.
        assert client.close_expected()
        client_output = client.data_to_send()
        assert len(client_output) == 1
        assert SEND_EOF not in client_output
        for data in client_output:
            server.receive_data(data)
        assert server.events_received() == [Frame(CLOSE, b"\x03\xe9restarting")]
        assert server.data_to_send() == [SEND_EOF]
        client.receive_eof()
        assert client.state is State.CLOSED
        pump(client, server)
        assert server.state is State.CLOSED
        assert client.close_exc.rcvd == server.close_exc.sent == Close(1001, "restarting")
        assert str(server.close_exc) == (
            "sent 1001 (going away) restarting; then received 1001 (going away) restarting"
        )
        assert str(client.close_exc) == (
            "received 1001 (going away) restarting; then sent 1001 (going away) restarting"
        )

    def test_connection_lost(self) -> None:
        client = ClientProtocol("ws://example.com/")
        server = ServerProtocol()
        handshake(client, server)
        client.receive_eof()
        pump(client, server)
        assert client.state is server.state is State.CLOSED
        assert type(client.close_exc) is ConnectionClosedError
        assert str(client.close_exc) == "no close frame received or sent"
        assert client.close_code == 1006

    def test_subprotocol_and_extension(self) -> None:
        client = ClientProtocol(
            "ws://example.com/", subprotocols=["v1", "v2"], extensions=[FakeClientFactory()]
        )
        server = ServerProtocol(subprotocols=["v2"], extensions=[FakeServerFactory()])
        handshake(client, server)
        assert client.subprotocol == server.subprotocol == "v2"
        assert [ext.name for ext in client.extensions] == ["x-xor"]
        assert [ext.name for ext in server.extensions] == ["x-xor"]
        server.send_text("Hello")
        [data] = server.data_to_send()
        assert data == b"\xc1\x05" + bytes(b ^ 0xFF for b in b"Hello")
        client.receive_data(data)
        assert client.events_received() == [Frame(TEXT, b"Hello")]
        client.send_binary(b"\x01")
        pump(client, server)
        assert server.events_received() == [Frame(BINARY, b"\x01")]

    def test_refused_handshake(self) -> None:
        client = ClientProtocol("ws://example.com/", origin="https://evil.example")
        server = ServerProtocol(origins=["https://good.example"])
        client.send_request(client.connect())
        pump(client, server)
        [request] = server.events_received()
        server.send_response(server.accept(request))  # type: ignore[arg-type]
        assert type(server.handshake_exc) is InvalidOrigin
        pump(server, client)
        [response] = client.events_received()
        assert isinstance(response, Response)
        assert response.status_code == 403
        exc = client.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.body == (
            b"Failed to open a WebSocket connection: invalid Origin header: https://evil.example.\n"
        )
        assert client.state is State.CLOSED
        pump(client, server)
        assert server.state is State.CLOSED

    def test_client_rejects_wrong_accept_from_server(self) -> None:
        client = ClientProtocol("ws://example.com/")
        server = ServerProtocol()
        client.send_request(client.connect())
        pump(client, server)
        [request] = server.events_received()
        assert isinstance(request, Request)
        response = server.accept(request)
        del response.headers["Sec-WebSocket-Accept"]
        response.headers["Sec-WebSocket-Accept"] = ACCEPT
        server.send_response(response)
        pump(server, client)
        assert type(client.handshake_exc) is InvalidHeaderValue
        assert client.data_to_send() == [SEND_EOF]


# Random input ----------------------------------------------------------------


# Requests assembled at random: each required line is usually there, sometimes
# wrong or missing; optional lines, valid or not, are added; the order varies.
REQUIRED_LINES = [
    ("Host: example.com", ["Host: "]),
    ("Upgrade: websocket", ["Upgrade: h2c", "Upgrade: ,"]),
    ("Connection: Upgrade", ["Connection: close", "Connection: Upgrade;"]),
    (f"Sec-WebSocket-Key: {KEY}", ["Sec-WebSocket-Key: short", "Sec-WebSocket-Key: \xe9"]),
    ("Sec-WebSocket-Version: 13", ["Sec-WebSocket-Version: 8"]),
]
OPTIONAL_LINES = [
    "Origin: https://good.example",
    "Origin: null",
    "Sec-WebSocket-Protocol: chat, v2",
    "Sec-WebSocket-Protocol: ;",
    "Sec-WebSocket-Extensions: x-xor; a=1",
    "Sec-WebSocket-Extensions: x-xor; decline",
    'Sec-WebSocket-Extensions: x-xor; a="b c"',
    "Content-Length: 0",
    "Content-Length: 3",
    "X-Latin: \xe9",
    " folded",
    "No-Colon",
]
START_LINES = [
    "GET /chat HTTP/1.1",
    "GET / HTTP/1.0",
    "POST / HTTP/1.1",
    "GET  HTTP/1.1",
    "garbage",
]


#: Where to cut the input, as offsets taken modulo its length plus one.
CUTS = st.lists(st.integers(0, 2**16), max_size=8)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the ``cuts`` offsets (modulo its length plus one)."""
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    start = draw(st.sampled_from(START_LINES)) if draw(st.integers(0, 3)) == 0 else START_LINES[0]
    lines = []
    for good, bad in REQUIRED_LINES:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue
        lines.append(good if choice > 1 else draw(st.sampled_from(bad)))
    lines += draw(st.lists(st.sampled_from(OPTIONAL_LINES), max_size=3))
    lines = draw(st.permutations(lines))
    head = "\r\n".join([start, *lines]) + "\r\n\r\n"
    tail = draw(st.sampled_from([b"", b"abc", client_frame(TEXT, b"hi"), client_frame(CLOSE)]))
    return head.encode("latin-1") + tail + draw(st.binary(max_size=20))


def check_server_after(protocol: ServerProtocol, chunks: list[bytes], accept_at: int) -> None:
    """Feed ``chunks`` then EOF, answering a request with accept() once ``accept_at`` chunks
    were fed; the protocol never raises and ends in a sane state."""
    output: list[bytes] = []
    request: Request | None = None
    for index, chunk in enumerate(chunks):
        protocol.receive_data(chunk)
        for event in protocol.events_received():
            if isinstance(event, Request):
                assert request is None
                request = event
        if request is not None and protocol.response is None and index >= accept_at:
            response = protocol.accept(request)
            assert response.status_code in (101, 400, 403, 426)
            protocol.send_response(response)
            protocol.events_received()
        output += protocol.data_to_send()
    protocol.receive_eof()
    protocol.events_received()
    output += protocol.data_to_send()
    assert protocol.state is State.CLOSED
    assert output.count(SEND_EOF) == 1
    assert output[-1] == SEND_EOF
    exc = protocol.handshake_exc
    if exc is not None:
        assert isinstance(exc, InvalidHandshake)
        assert exc.__cause__ is None or isinstance(exc.__cause__, (WebSocketException, EOFError))
        assert protocol.response is None or protocol.response.status_code != 101
    elif protocol.response is None:
        # A request arrived, and EOF came before it was answered.
        assert request is not None


class TestRandomInput:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=300), CUTS, st.integers(0, 3))
    def test_random_bytes_never_raise(self, data: bytes, cuts: list[int], accept_at: int) -> None:
        protocol = ServerProtocol(
            origins=["https://good.example", None],
            subprotocols=["chat"],
            extensions=[FakeServerFactory()],
        )
        check_server_after(protocol, split_at(data, cuts), accept_at)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests(), CUTS, st.integers(0, 3))
    def test_random_requests_never_raise(
        self, data: bytes, cuts: list[int], accept_at: int
    ) -> None:
        protocol = ServerProtocol(
            origins=["https://good.example", None],
            subprotocols=["chat"],
            extensions=[FakeServerFactory()],
        )
        check_server_after(protocol, split_at(data, cuts), accept_at)

    @settings(max_examples=25, deadline=None)
    @given(CUTS)
    def test_any_split_of_a_valid_request(self, cuts: list[int]) -> None:
        protocol = ServerProtocol()
        events: list[Event] = []
        for chunk in split_at(REQUEST + client_frame(TEXT, b"Hello") + client_frame(PING), cuts):
            protocol.receive_data(chunk)
            events += protocol.events_received()
        assert len(events) == 1
        assert isinstance(events[0], Request)
        protocol.send_response(protocol.accept(events[0]))
        assert protocol.events_received() == [Frame(TEXT, b"Hello"), Frame(PING, b"")]
