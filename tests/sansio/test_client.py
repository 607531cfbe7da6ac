"""ClientProtocol: building the opening handshake request and checking the response."""

from __future__ import annotations

import base64
import itertools
import logging
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anyws.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    SecurityError,
    WebSocketException,
)
from anyws.sansio import (
    SEND_EOF,
    ClientProtocol,
    Event,
    Frame,
    Headers,
    Opcode,
    Protocol,
    Request,
    Response,
    Side,
    State,
    parse_uri,
)
from anyws.sansio._frames import serialize_frame
from anyws.sansio._handshake import USER_AGENT, accept_key
from anyws.sansio.extensions import ClientExtensionFactory, Extension, ExtensionParameter

from .helpers import MASK, split_every


TEXT, BINARY, PING, PONG, CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG, Opcode.CLOSE

# RFC 6455, section 1.3: the example key and the accept value it calls for.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

ACCEPT_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


# Helpers ---------------------------------------------------------------------


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


class FakeClientFactory(ClientExtensionFactory):
    """Offers ``name`` with ``params``; refuses an answer that has a ``reject`` parameter."""

    def __init__(self, name: str = "x-xor", params: Sequence[ExtensionParameter] = ()) -> None:
        self.name = name
        self.params = list(params)
        self.calls: list[tuple[list[ExtensionParameter], list[Extension]]] = []
        self.created: list[XorExtension] = []

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        return self.params

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        self.calls.append((list(params), list(accepted_extensions)))
        if ("reject", None) in params:
            raise NegotiationError(f"{self.name} refuses {params}")
        extension = XorExtension(self.name, params)
        self.created.append(extension)
        return extension


def make_client(uri: str = "ws://example.com/chat", **kwargs: object) -> ClientProtocol:
    """A client with the RFC's example key, so that the expected bytes are fixed."""
    protocol = ClientProtocol(uri, **kwargs)  # type: ignore[arg-type]
    protocol.key = KEY
    return protocol


def sent_request(uri: str = "ws://example.com/chat", **kwargs: object) -> ClientProtocol:
    """A client that sent its request; the request bytes are already taken."""
    protocol = make_client(uri, **kwargs)
    protocol.send_request(protocol.connect())
    assert len(protocol.data_to_send()) == 1
    return protocol


def response(
    *lines: str,
    status: str = "101 Switching Protocols",
    body: bytes = b"",
) -> bytes:
    """A response with the given header lines (none by default, unlike ACCEPT_RESPONSE)."""
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return head.encode("latin-1") + body


UPGRADE = "Upgrade: websocket"
CONNECTION = "Connection: Upgrade"
ACCEPT_LINE = f"Sec-WebSocket-Accept: {ACCEPT}"


def server_frame(opcode: int, data: bytes = b"", *, rsv1: bool = False) -> bytes:
    """A frame as a server sends it: unmasked."""
    return serialize_frame(opcode, data, rsv1=rsv1)


def assert_handshake_failed(protocol: ClientProtocol) -> None:
    """What a failed handshake looks like: the client closes, and ignores what follows."""
    # The response, if one arrived, is the only event.
    events = protocol.events_received()
    assert len(events) <= 1
    assert all(isinstance(event, Response) for event in events)
    assert protocol.state is State.CONNECTING
    assert protocol.close_expected()
    assert protocol.data_to_send() == [SEND_EOF]
    assert protocol.eof_sent
    # Anything arriving afterwards, even a valid frame, is ignored.
    protocol.receive_data(server_frame(TEXT, b"late") + ACCEPT_RESPONSE)
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []
    assert protocol.state is State.CONNECTING
    # At the end of the stream, the connection is closed, without a second EOF.
    protocol.receive_eof()
    assert protocol.state is State.CLOSED
    assert protocol.data_to_send() == []
    assert protocol.events_received() == []
    assert protocol.close_code == 1006


# Building the request --------------------------------------------------------


class TestConnect:
    def test_default_request_bytes(self) -> None:
        protocol = make_client("ws://example.com/chat")
        request = protocol.connect()
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

    def test_user_agent_names_python_and_anyws(self) -> None:
        import sys

        assert USER_AGENT.startswith(f"Python/{sys.version_info.major}.{sys.version_info.minor} ")
        assert " anyws/" in USER_AGENT

    def test_connect_queues_nothing(self) -> None:
        protocol = make_client()
        protocol.connect()
        assert protocol.data_to_send() == []
        assert protocol.request is None
        assert protocol.state is State.CONNECTING
        assert not protocol.close_expected()

    def test_key_is_16_random_bytes(self) -> None:
        first = ClientProtocol("ws://example.com/")
        second = ClientProtocol("ws://example.com/")
        assert len(base64.b64decode(first.key, validate=True)) == 16
        assert first.key != second.key
        assert first.connect().headers["Sec-WebSocket-Key"] == first.key

    @pytest.mark.parametrize(
        ("uri", "path"),
        [
            ("ws://example.com", "/"),
            ("ws://example.com/", "/"),
            ("ws://example.com/chat", "/chat"),
            ("ws://example.com/chat?room=1&x", "/chat?room=1&x"),
            ("ws://example.com?room=1", "/?room=1"),
            ("ws://example.com/caf\u00e9 x", "/caf%C3%A9%20x"),
        ],
    )
    def test_request_target(self, uri: str, path: str) -> None:
        request = make_client(uri).connect()
        assert request.path == path
        assert request.serialize().startswith(f"GET {path} HTTP/1.1\r\n".encode())

    @pytest.mark.parametrize(
        ("uri", "host"),
        [
            ("ws://example.com/", "example.com"),
            ("ws://example.com:80/", "example.com"),
            ("ws://example.com:443/", "example.com:443"),
            ("ws://example.com:8080/", "example.com:8080"),
            ("wss://example.com/", "example.com"),
            ("wss://example.com:443/", "example.com"),
            ("wss://example.com:80/", "example.com:80"),
            ("ws://EXAMPLE.com/", "example.com"),
            ("ws://127.0.0.1:9000/", "127.0.0.1:9000"),
            ("ws://[::1]/", "[::1]"),
            ("ws://[::1]:8080/", "[::1]:8080"),
            ("wss://[2001:DB8::1]:443/", "[2001:db8::1]"),
            ("ws://[fe80::1%25eth0]:8080/", "[fe80::1%25eth0]:8080"),
        ],
    )
    def test_host_header(self, uri: str, host: str) -> None:
        request = make_client(uri).connect()
        assert request.headers.get_all("Host") == [host]
        # Host is the first header (RFC 7230, section 5.4).
        assert request.headers.items()[0] == ("Host", host)

    def test_parsed_uri(self) -> None:
        protocol = ClientProtocol(parse_uri("wss://example.com:8443/x"))
        assert protocol.uri == parse_uri("wss://example.com:8443/x")
        request = protocol.connect()
        assert request.path == "/x"
        assert request.headers["Host"] == "example.com:8443"

    def test_invalid_uri_raises(self) -> None:
        with pytest.raises(InvalidURI) as raised:
            ClientProtocol("http://example.com/")
        assert str(raised.value) == "http://example.com/ isn't a valid URI: scheme isn't ws or wss"

    def test_origin(self) -> None:
        request = make_client(origin="https://example.com").connect()
        assert request.headers.get_all("Origin") == ["https://example.com"]
        assert b"\r\nOrigin: https://example.com\r\n" in request.serialize()

    def test_no_origin_by_default(self) -> None:
        assert "Origin" not in make_client().connect().headers

    def test_subprotocols(self) -> None:
        request = make_client(subprotocols=["chat", "superchat"]).connect()
        assert request.headers.get_all("Sec-WebSocket-Protocol") == ["chat, superchat"]

    def test_no_subprotocols_by_default(self) -> None:
        request = make_client(subprotocols=[]).connect()
        assert "Sec-WebSocket-Protocol" not in request.headers

    def test_extension_offers(self) -> None:
        factories = [
            FakeClientFactory("x-xor", [("level", "9"), ("no_context", None)]),
            FakeClientFactory("x-other"),
        ]
        request = make_client(extensions=factories).connect()
        assert request.headers.get_all("Sec-WebSocket-Extensions") == [
            "x-xor; level=9; no_context, x-other"
        ]

    def test_no_extensions_by_default(self) -> None:
        assert "Sec-WebSocket-Extensions" not in make_client().connect().headers

    @pytest.mark.parametrize(
        ("uri", "credentials"),
        [
            ("ws://user:pass@example.com/", b"user:pass"),
            ("ws://user:@example.com/", b"user:"),
            ("ws://us%40er:p%3Ass@example.com/", b"us@er:p:ss"),
            ("ws://user:p@ss@example.com/", b"user:p@ss"),
            ("ws://%C3%A9l%C3%A8ve:mot@example.com/", "élève:mot".encode()),
        ],
    )
    def test_basic_auth_from_uri(self, uri: str, credentials: bytes) -> None:
        request = make_client(uri).connect()
        expected = "Basic " + base64.b64encode(credentials).decode()
        assert request.headers.get_all("Authorization") == [expected]
        # The credentials don't leak into Host or the request target.
        assert request.headers["Host"] == "example.com"
        assert request.path == "/"

    def test_no_authorization_without_credentials(self) -> None:
        assert "Authorization" not in make_client().connect().headers

    def test_header_order(self) -> None:
        protocol = make_client(
            "ws://user:pass@example.com/",
            origin="https://example.com",
            extensions=[FakeClientFactory()],
            subprotocols=["chat"],
        )
        request = protocol.connect(additional_headers={"X-Extra": "1"})
        assert [name for name, _ in request.headers.items()] == [
            "Host",
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "Origin",
            "Sec-WebSocket-Extensions",
            "Sec-WebSocket-Protocol",
            "Authorization",
            "X-Extra",
            "User-Agent",
        ]

    @pytest.mark.parametrize(
        "additional_headers",
        [
            {"X-Token": "abc", "Cookie": "a=b"},
            [("X-Token", "abc"), ("Cookie", "a=b")],
            Headers([("X-Token", "abc"), ("Cookie", "a=b")]),
        ],
        ids=["dict", "pairs", "Headers"],
    )
    def test_additional_headers(self, additional_headers: object) -> None:
        request = make_client().connect(additional_headers=additional_headers)  # type: ignore[arg-type]
        assert request.headers.items()[-3:] == [
            ("X-Token", "abc"),
            ("Cookie", "a=b"),
            ("User-Agent", USER_AGENT),
        ]

    def test_additional_headers_keep_repeated_fields(self) -> None:
        request = make_client().connect(additional_headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
        assert request.headers.get_all("Cookie") == ["a=1", "b=2"]

    def test_additional_headers_replace_host_origin_authorization_user_agent(self) -> None:
        protocol = make_client("ws://user:pass@127.0.0.1:8080/", origin="https://a.example")
        request = protocol.connect(
            additional_headers={
                "host": "virtual.example",
                "Origin": "https://b.example",
                "Authorization": "Bearer token",
                "User-Agent": "custom/1.0",
            }
        )
        assert request.headers.get_all("Host") == ["virtual.example"]
        assert request.headers.get_all("Origin") == ["https://b.example"]
        assert request.headers.get_all("Authorization") == ["Bearer token"]
        assert request.headers.get_all("User-Agent") == ["custom/1.0"]
        # Host stays first even when it comes from additional_headers.
        assert request.headers.items()[0] == ("Host", "virtual.example")

    def test_custom_user_agent(self) -> None:
        request = make_client().connect(user_agent_header="my-client/2.0")
        assert request.headers.get_all("User-Agent") == ["my-client/2.0"]

    def test_no_user_agent(self) -> None:
        request = make_client().connect(user_agent_header=None)
        assert "User-Agent" not in request.headers
        assert request.serialize().endswith(b"Sec-WebSocket-Version: 13\r\n\r\n")

    def test_invalid_additional_header_raises(self) -> None:
        with pytest.raises(ValueError):
            make_client().connect(additional_headers={"X-Bad": "a\r\nInjected: yes"})

    def test_invalid_subprotocol_raises(self) -> None:
        with pytest.raises(ValueError):
            make_client(subprotocols=["not a token"]).connect()


class TestSendRequest:
    def test_request_bytes(self) -> None:
        protocol = make_client()
        request = protocol.connect()
        protocol.send_request(request)
        assert protocol.data_to_send() == [request.serialize()]
        assert protocol.request is request
        assert protocol.state is State.CONNECTING
        assert not protocol.close_expected()
        assert protocol.events_received() == []

    def test_request_changed_before_sending(self) -> None:
        protocol = make_client()
        request = protocol.connect()
        request.headers["X-Late"] = "yes"
        protocol.send_request(request)
        [data] = protocol.data_to_send()
        assert data.endswith(b"X-Late: yes\r\n\r\n")

    def test_custom_request(self) -> None:
        protocol = make_client()
        request = Request("/custom", Headers(Host="h"))
        protocol.send_request(request)
        assert protocol.data_to_send() == [b"GET /custom HTTP/1.1\r\nHost: h\r\n\r\n"]

    def test_send_request_twice_raises(self) -> None:
        protocol = make_client()
        request = protocol.connect()
        protocol.send_request(request)
        protocol.data_to_send()
        with pytest.raises(InvalidState) as raised:
            protocol.send_request(protocol.connect())
        assert type(raised.value) is InvalidState
        assert str(raised.value) == "request already sent"
        assert protocol.data_to_send() == []
        assert protocol.request is request

    def test_sending_frames_before_the_handshake_raises(self) -> None:
        protocol = sent_request()
        with pytest.raises(InvalidState, match="connection is connecting"):
            protocol.send_text("too early")
        with pytest.raises(InvalidState, match="connection is connecting"):
            protocol.send_close(1000)
        assert protocol.data_to_send() == []


# A valid response --------------------------------------------------------------


class TestAccepted:
    def test_switching_protocols(self) -> None:
        protocol = sent_request()
        protocol.receive_data(ACCEPT_RESPONSE)
        assert protocol.state is State.OPEN
        [event] = protocol.events_received()
        assert event == Response(
            101,
            "Switching Protocols",
            Headers(
                [
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", ACCEPT),
                ]
            ),
        )
        assert protocol.response == event
        assert protocol.handshake_exc is None
        assert protocol.subprotocol is None
        assert protocol.extensions == []
        assert not protocol.close_expected()
        assert protocol.data_to_send() == []

    def test_accept_matches_the_random_key(self) -> None:
        protocol = ClientProtocol("ws://example.com/")
        protocol.send_request(protocol.connect())
        protocol.receive_data(
            response(UPGRADE, CONNECTION, f"Sec-WebSocket-Accept: {accept_key(protocol.key)}")
        )
        assert protocol.state is State.OPEN
        assert protocol.handshake_exc is None

    @pytest.mark.parametrize(
        "lines",
        [
            ["upgrade: WebSocket", "connection: upgrade", f"sec-websocket-accept: {ACCEPT}"],
            ["Upgrade: WEBSOCKET", "Connection: keep-alive, Upgrade", ACCEPT_LINE],
            ["Upgrade: h2c, websocket", "Connection: Upgrade", ACCEPT_LINE],
            ["Upgrade: websocket", "Connection: close", "Connection: Upgrade", ACCEPT_LINE],
            [UPGRADE, CONNECTION, ACCEPT_LINE, "Server: test", "Date: today"],
        ],
        ids=["case", "connection-list", "upgrade-list", "repeated-connection", "extra"],
    )
    def test_header_variants(self, lines: list[str]) -> None:
        protocol = sent_request()
        protocol.receive_data(response(*lines))
        assert protocol.handshake_exc is None
        assert protocol.state is State.OPEN

    def test_reason_phrase_is_free(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response(UPGRADE, CONNECTION, ACCEPT_LINE, status="101 Yes"))
        assert protocol.state is State.OPEN
        [event] = protocol.events_received()
        assert isinstance(event, Response)
        assert event.reason_phrase == "Yes"

    def test_subprotocol(self) -> None:
        protocol = sent_request(subprotocols=["chat", "superchat"])
        protocol.receive_data(
            response(UPGRADE, CONNECTION, ACCEPT_LINE, "Sec-WebSocket-Protocol: superchat")
        )
        assert protocol.state is State.OPEN
        assert protocol.subprotocol == "superchat"

    def test_no_subprotocol_selected(self) -> None:
        protocol = sent_request(subprotocols=["chat"])
        protocol.receive_data(ACCEPT_RESPONSE)
        assert protocol.state is State.OPEN
        assert protocol.subprotocol is None

    def test_frames_in_the_same_chunk(self) -> None:
        protocol = sent_request()
        protocol.receive_data(
            ACCEPT_RESPONSE
            + server_frame(TEXT, "café".encode())
            + server_frame(BINARY, b"\x00\xff")
            + server_frame(PING, b"hi")
        )
        assert protocol.state is State.OPEN
        events = protocol.events_received()
        assert isinstance(events[0], Response)
        assert events[1:] == [
            Frame(TEXT, "café".encode()),
            Frame(BINARY, b"\x00\xff"),
            Frame(PING, b"hi"),
        ]
        # The ping is answered with a masked pong.
        [pong] = protocol.data_to_send()
        assert pong[:2] == b"\x8a\x82"
        assert sent_frames_of(pong) == [Frame(PONG, b"hi")]

    def test_partial_frame_after_the_response(self) -> None:
        protocol = sent_request()
        frame = server_frame(TEXT, b"Hello")
        protocol.receive_data(ACCEPT_RESPONSE + frame[:3])
        assert [type(event) for event in protocol.events_received()] == [Response]
        protocol.receive_data(frame[3:])
        assert protocol.events_received() == [Frame(TEXT, b"Hello")]

    def test_close_frame_in_the_same_chunk(self) -> None:
        protocol = sent_request()
        protocol.receive_data(ACCEPT_RESPONSE + server_frame(CLOSE, b"\x03\xe9bye"))
        events = protocol.events_received()
        assert events[1:] == [Frame(CLOSE, b"\x03\xe9bye")]
        assert protocol.state is State.CLOSING
        assert protocol.close_expected()
        # The client echoes the close frame and waits for the server to close TCP.
        [echo] = protocol.data_to_send()
        assert sent_frames_of(echo) == [Frame(CLOSE, b"\x03\xe9bye")]

    def test_invalid_frame_in_the_same_chunk_fails_the_connection(self) -> None:
        protocol = sent_request()
        # A server must not mask its frames.
        protocol.receive_data(
            ACCEPT_RESPONSE + serialize_frame(TEXT, b"x", mask=MASK) + server_frame(TEXT, b"y")
        )
        assert [type(event) for event in protocol.events_received()] == [Response]
        assert protocol.handshake_exc is None
        assert str(protocol.parser_exc) == "incorrect masking"
        assert protocol.state is State.CLOSING
        [close] = protocol.data_to_send()
        assert sent_frames_of(close) == [Frame(CLOSE, b"\x03\xeaincorrect masking")]

    @pytest.mark.parametrize("size", [1, 2, 7])
    def test_response_in_small_chunks(self, size: int) -> None:
        protocol = sent_request()
        data = ACCEPT_RESPONSE + server_frame(TEXT, b"Hello")
        chunks = split_every(data, size)
        boundary = len(ACCEPT_RESPONSE)
        received = 0
        for chunk in chunks:
            protocol.receive_data(chunk)
            received += len(chunk)
            events = protocol.events_received()
            if received < boundary:
                assert events == []
                assert protocol.state is State.CONNECTING
            elif received - len(chunk) < boundary:
                assert isinstance(events[0], Response)
                assert protocol.state is State.OPEN
        assert protocol.handshake_exc is None
        assert protocol.response is not None
        assert protocol.data_to_send() == []

    def test_response_byte_by_byte_then_frames(self) -> None:
        protocol = sent_request()
        for index in range(len(ACCEPT_RESPONSE)):
            assert protocol.state is State.CONNECTING
            assert protocol.events_received() == []
            protocol.receive_data(ACCEPT_RESPONSE[index : index + 1])
        assert protocol.state is State.OPEN
        [event] = protocol.events_received()
        assert isinstance(event, Response)
        for byte in split_every(server_frame(BINARY, b"abc"), 1):
            protocol.receive_data(byte)
        assert protocol.events_received() == [Frame(BINARY, b"abc")]

    def test_sending_after_the_handshake(self) -> None:
        protocol = sent_request()
        protocol.receive_data(ACCEPT_RESPONSE)
        protocol.send_text("Hello")
        [data] = protocol.data_to_send()
        assert data[:2] == b"\x81\x85"  # masked
        assert sent_frames_of(data) == [Frame(TEXT, b"Hello")]

    def test_eof_after_the_handshake(self) -> None:
        protocol = sent_request()
        protocol.receive_data(ACCEPT_RESPONSE)
        protocol.receive_eof()
        assert protocol.state is State.CLOSED
        assert protocol.handshake_exc is None
        assert isinstance(protocol.parser_exc, EOFError)
        assert protocol.data_to_send() == [SEND_EOF]


def sent_frames_of(data: bytes) -> list[Event]:
    """Parse bytes that a client sent, as a server does."""
    peer = Protocol(Side.SERVER, max_size=None)
    peer.receive_data(data)
    return peer.events_received()


def unmask(data: bytes) -> bytes:
    """The payload of a short masked frame."""
    assert data[1] & 0x80
    assert data[1] & 0x7F < 126
    key = data[2:6]
    return bytes(b ^ key[i % 4] for i, b in enumerate(data[6:]))


class TestExtensions:
    def test_accepted_extension_is_installed(self) -> None:
        factory = FakeClientFactory("x-xor", [("level", "9")])
        protocol = sent_request(extensions=[factory])
        protocol.receive_data(
            response(UPGRADE, CONNECTION, ACCEPT_LINE, "Sec-WebSocket-Extensions: x-xor; level=1")
        )
        assert protocol.handshake_exc is None
        assert protocol.state is State.OPEN
        assert factory.calls == [([("level", "1")], [])]
        assert protocol.extensions == factory.created
        assert len(factory.created) == 1

    def test_frames_after_the_response_go_through_the_extension(self) -> None:
        factory = FakeClientFactory()
        protocol = sent_request(extensions=[factory])
        protocol.receive_data(
            response(UPGRADE, CONNECTION, ACCEPT_LINE, "Sec-WebSocket-Extensions: x-xor")
            + server_frame(TEXT, bytes(b ^ 0xFF for b in b"Hello"), rsv1=True)
        )
        events = protocol.events_received()
        assert events[1:] == [Frame(TEXT, b"Hello")]
        # Outgoing frames too: RSV1 set, payload flipped, then masked.
        protocol.send_binary(b"\x00")
        [data] = protocol.data_to_send()
        assert data[0] == 0xC2  # FIN + RSV1 + BINARY
        assert unmask(data) == b"\xff"

    def test_extensions_in_the_servers_order(self) -> None:
        first, second = FakeClientFactory("x-a"), FakeClientFactory("x-b")
        protocol = sent_request(extensions=[first, second])
        protocol.receive_data(
            response(
                UPGRADE,
                CONNECTION,
                ACCEPT_LINE,
                "Sec-WebSocket-Extensions: x-b",
                'Sec-WebSocket-Extensions: x-a; p="v"',
            )
        )
        assert protocol.handshake_exc is None
        assert [ext.name for ext in protocol.extensions] == ["x-b", "x-a"]
        assert second.calls == [([], [])]
        assert first.calls == [([("p", "v")], second.created)]

    def test_no_extension_accepted(self) -> None:
        protocol = sent_request(extensions=[FakeClientFactory()])
        protocol.receive_data(ACCEPT_RESPONSE)
        assert protocol.state is State.OPEN
        assert protocol.extensions == []


# A failed handshake ----------------------------------------------------------


class TestInvalidStatus:
    def test_status_with_content_length_body(self) -> None:
        protocol = sent_request()
        protocol.receive_data(
            response(
                "Content-Type: text/plain",
                "Content-Length: 9",
                status="403 Forbidden",
                body=b"Forbidden",
            )
        )
        [event] = protocol.events_received()
        assert isinstance(event, Response)
        assert (event.status_code, event.reason_phrase, event.body) == (
            403,
            "Forbidden",
            b"Forbidden",
        )
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert str(exc) == "server rejected WebSocket connection: HTTP 403"
        assert exc.response is event
        assert exc.__cause__ is None
        assert protocol.response is event
        assert_handshake_failed(protocol)

    def test_status_with_chunked_body(self) -> None:
        protocol = sent_request()
        protocol.receive_data(
            response(
                "Transfer-Encoding: chunked",
                status="500 Internal Server Error",
                body=b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n",
            )
        )
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.body == b"Wikipedia "
        assert str(exc) == "server rejected WebSocket connection: HTTP 500"
        assert_handshake_failed(protocol)

    def test_status_with_body_read_until_eof_in_one_chunk(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response(status="404 Not Found", body=b"no such thing"))
        assert protocol.handshake_exc is None
        assert protocol.events_received() == []
        protocol.receive_eof()
        [event] = protocol.events_received()
        assert isinstance(event, Response)
        assert event.body == b"no such thing"
        assert type(protocol.handshake_exc) is InvalidStatus
        assert protocol.state is State.CLOSED
        assert protocol.data_to_send() == [SEND_EOF]

    def test_status_with_body_read_until_eof_in_pieces(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response(status="404 Not Found"))
        protocol.receive_data(b"no such ")
        protocol.receive_data(b"thing")
        protocol.receive_eof()
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.body == b"no such thing"
        assert protocol.state is State.CLOSED
        assert protocol.data_to_send() == [SEND_EOF]

    def test_status_with_content_length_body_in_two_chunks(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response("Content-Length: 9", status="403 Forbidden"))
        assert protocol.handshake_exc is None
        protocol.receive_data(b"Forbidden")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.body == b"Forbidden"
        assert_handshake_failed(protocol)

    def test_status_with_content_length_body_byte_by_byte(self) -> None:
        protocol = sent_request()
        for byte in split_every(
            response("Content-Length: 3", status="403 Forbidden", body=b"no!"), 1
        ):
            protocol.receive_data(byte)
        assert type(protocol.handshake_exc) is InvalidStatus
        assert protocol.handshake_exc.response.body == b"no!"

    def test_status_with_chunked_body_in_two_chunks(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response("Transfer-Encoding: chunked", status="400 Bad Request"))
        protocol.receive_data(b"3\r\nabc\r\n0\r\n\r\n")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.body == b"abc"

    @pytest.mark.parametrize(
        "status", ["100 Continue", "102 Processing", "204 No Content", "304 Not Modified"]
    )
    def test_status_without_body(self, status: str) -> None:
        protocol = sent_request()
        protocol.receive_data(response(status=status))
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.status_code == int(status[:3])
        assert exc.response.body == b""
        assert str(exc) == f"server rejected WebSocket connection: HTTP {status[:3]}"
        assert_handshake_failed(protocol)

    def test_redirect(self) -> None:
        protocol = sent_request()
        protocol.receive_data(
            response("Location: wss://elsewhere/", "Content-Length: 0", status="302 Found")
        )
        exc = protocol.handshake_exc
        assert type(exc) is InvalidStatus
        assert exc.response.headers["Location"] == "wss://elsewhere/"
        assert_handshake_failed(protocol)


class TestInvalidResponse:
    """A 101 response that doesn't complete the handshake."""

    @pytest.mark.parametrize(
        ("lines", "exc_type", "message"),
        [
            (
                [CONNECTION, ACCEPT_LINE],
                InvalidUpgrade,
                "missing Upgrade header",
            ),
            (
                ["Upgrade: h2c", CONNECTION, ACCEPT_LINE],
                InvalidUpgrade,
                "invalid Upgrade header: h2c",
            ),
            (
                ["Upgrade: websocket2", CONNECTION, ACCEPT_LINE],
                InvalidUpgrade,
                "invalid Upgrade header: websocket2",
            ),
            (
                [UPGRADE, ACCEPT_LINE],
                InvalidUpgrade,
                "missing Connection header",
            ),
            (
                [UPGRADE, "Connection: keep-alive", ACCEPT_LINE],
                InvalidUpgrade,
                "invalid Connection header: keep-alive",
            ),
            (
                [ACCEPT_LINE],
                InvalidUpgrade,
                "missing Connection header",
            ),
            (
                ["Upgrade: ,", CONNECTION, ACCEPT_LINE],
                InvalidHeaderFormat,
                "invalid Upgrade header: expected token at 1 in ,",
            ),
            (
                [UPGRADE, CONNECTION],
                InvalidHeader,
                "missing Sec-WebSocket-Accept header",
            ),
            (
                [UPGRADE, CONNECTION, "Sec-WebSocket-Accept: wrong"],
                InvalidHeaderValue,
                "invalid Sec-WebSocket-Accept header: wrong",
            ),
            (
                # The accept value of another key.
                [UPGRADE, CONNECTION, f"Sec-WebSocket-Accept: {accept_key('x' * 24)}"],
                InvalidHeaderValue,
                f"invalid Sec-WebSocket-Accept header: {accept_key('x' * 24)}",
            ),
            (
                [UPGRADE, CONNECTION, ACCEPT_LINE, ACCEPT_LINE],
                InvalidHeader,
                "invalid Sec-WebSocket-Accept header: multiple values",
            ),
            (
                [UPGRADE, CONNECTION, ACCEPT_LINE, "Sec-WebSocket-Protocol: chat"],
                NegotiationError,
                "no subprotocols supported",
            ),
            (
                [UPGRADE, CONNECTION, ACCEPT_LINE, "Sec-WebSocket-Extensions: x-xor"],
                NegotiationError,
                "no extensions supported",
            ),
        ],
        ids=[
            "no-upgrade",
            "upgrade-h2c",
            "upgrade-websocket2",
            "no-connection",
            "connection-keep-alive",
            "neither",
            "upgrade-malformed",
            "no-accept",
            "wrong-accept",
            "accept-of-another-key",
            "two-accepts",
            "unoffered-subprotocol",
            "unoffered-extension",
        ],
    )
    def test_invalid_101(self, lines: list[str], exc_type: type[Exception], message: str) -> None:
        protocol = sent_request()
        protocol.receive_data(response(*lines) + server_frame(TEXT, b"ignored"))
        [event] = protocol.events_received()
        assert isinstance(event, Response)
        assert event.status_code == 101
        exc = protocol.handshake_exc
        assert type(exc) is exc_type
        assert str(exc) == message
        assert protocol.subprotocol is None
        assert protocol.extensions == []
        assert_handshake_failed(protocol)

    @pytest.mark.parametrize(
        ("lines", "exc_type", "message"),
        [
            (
                ["Sec-WebSocket-Protocol: other"],
                NegotiationError,
                "unsupported subprotocol: other",
            ),
            (
                ["Sec-WebSocket-Protocol: chat, superchat"],
                InvalidHeader,
                "invalid Sec-WebSocket-Protocol header: multiple values: chat, superchat",
            ),
            (
                ["Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat"],
                InvalidHeader,
                "invalid Sec-WebSocket-Protocol header: multiple values: chat, superchat",
            ),
            (
                ["Sec-WebSocket-Protocol: chat/1"],
                InvalidHeaderFormat,
                "invalid Sec-WebSocket-Protocol header: expected comma at 4 in chat/1",
            ),
            (
                ["Sec-WebSocket-Extensions: x-other"],
                NegotiationError,
                "unsupported extension: name = x-other, params = []",
            ),
            (
                ["Sec-WebSocket-Extensions: x-xor; reject"],
                NegotiationError,
                "unsupported extension: name = x-xor, params = [('reject', None)]",
            ),
            (
                # Each offer may be accepted once.
                ["Sec-WebSocket-Extensions: x-xor, x-xor"],
                NegotiationError,
                "unsupported extension: name = x-xor, params = []",
            ),
            (
                ["Sec-WebSocket-Extensions: x-xor;"],
                InvalidHeaderFormat,
                "invalid Sec-WebSocket-Extensions header: expected token at 6 in x-xor;",
            ),
        ],
        ids=[
            "unoffered-subprotocol",
            "two-subprotocols",
            "two-subprotocol-headers",
            "malformed-subprotocol",
            "unoffered-extension",
            "declined-parameters",
            "extension-twice",
            "malformed-extensions",
        ],
    )
    def test_negotiation_failures(
        self, lines: list[str], exc_type: type[Exception], message: str
    ) -> None:
        protocol = sent_request(
            subprotocols=["chat", "superchat"], extensions=[FakeClientFactory()]
        )
        protocol.receive_data(response(UPGRADE, CONNECTION, ACCEPT_LINE, *lines))
        exc = protocol.handshake_exc
        assert type(exc) is exc_type
        assert str(exc) == message
        assert protocol.subprotocol is None
        assert protocol.extensions == []
        assert_handshake_failed(protocol)


class TestMalformedResponse:
    @pytest.mark.parametrize(
        ("data", "cause_type", "cause"),
        [
            (
                b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
                InvalidMessage,
                "unsupported HTTP version; expected HTTP/1.1: b'HTTP/1.0'",
            ),
            (
                b"HTTP/1.1 1O1 Switching Protocols\r\n\r\n",
                InvalidMessage,
                "invalid HTTP status code: b'1O1'",
            ),
            (
                b"HTTP/1.1 099 Too Low\r\n\r\n",
                InvalidMessage,
                "invalid HTTP status code: b'099'",
            ),
            (
                b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                InvalidMessage,
                "invalid HTTP status line: b'SSH-2.0-OpenSSH_9.6'",
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
                InvalidMessage,
                "bare LF in HTTP response",
            ),
            (
                b"HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n",
                InvalidMessage,
                "invalid HTTP header line: b'Upgrade websocket'",
            ),
            (
                b"HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n",
                InvalidMessage,
                "invalid HTTP header name: b'Upgrade '",
            ),
            (
                b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n  , foo\r\n\r\n",
                InvalidMessage,
                "obsolete line folding in HTTP response isn't supported",
            ),
            (
                b"HTTP/1.1 101 OK\r\nX-Big: " + b"a" * 8193 + b"\r\n\r\n",
                SecurityError,
                "HTTP line exceeds limit of 8192 bytes",
            ),
            (
                b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 129 + b"\r\n",
                SecurityError,
                "more than 128 HTTP headers",
            ),
            (
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2**20\r\n\r\n",
                InvalidHeaderValue,
                "invalid Content-Length header: 2**20",
            ),
            (
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 1048577\r\n\r\n",
                SecurityError,
                "HTTP body of 1048577 bytes exceeds limit of 1048576 bytes",
            ),
            (
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                InvalidMessage,
                "both Transfer-Encoding and Content-Length in response",
            ),
        ],
        ids=[
            "http-1.0",
            "status-letter",
            "status-099",
            "not-http",
            "bare-lf",
            "no-colon",
            "space-before-colon",
            "obs-fold",
            "long-line",
            "many-headers",
            "bad-content-length",
            "huge-content-length",
            "te-and-cl",
        ],
    )
    def test_malformed(self, data: bytes, cause_type: type[Exception], cause: str) -> None:
        protocol = sent_request()
        protocol.receive_data(data)
        assert protocol.events_received() == []
        assert protocol.response is None
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc) == "did not receive a valid HTTP response"
        assert type(exc.__cause__) is cause_type
        assert str(exc.__cause__) == cause
        assert_handshake_failed(protocol)

    def test_oversized_line_fails_before_the_head_completes(self) -> None:
        protocol = sent_request()
        protocol.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nX-Big: ")
        protocol.receive_data(b"a" * (8192 - len(b"X-Big: ")))
        assert protocol.handshake_exc is None
        protocol.receive_data(b"a")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert type(exc.__cause__) is SecurityError
        assert str(exc.__cause__) == "HTTP line exceeds limit of 8192 bytes"
        assert_handshake_failed(protocol)

    def test_oversized_head_fails_before_it_completes(self) -> None:
        protocol = sent_request()
        protocol.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")
        received = 34
        while protocol.handshake_exc is None:
            line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
            protocol.receive_data(line)
            received += len(line)
            assert received < 65536 + len(line)
        assert received >= 65536
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert type(exc.__cause__) is SecurityError
        assert str(exc.__cause__) == "HTTP headers exceed limit of 65536 bytes"
        assert_handshake_failed(protocol)

    def test_binary_garbage_with_bare_cr(self) -> None:
        protocol = sent_request()
        protocol.receive_data(b"\x16\x03\x01\x00\xa5\r\x01")
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc.__cause__) == "bare CR in HTTP response"
        assert_handshake_failed(protocol)


class TestEOFDuringHandshake:
    @pytest.mark.parametrize(
        ("data", "cause"),
        [
            (b"", "connection closed while reading HTTP status line"),
            (b"HTTP/1.1 101 Swit", "connection closed while reading HTTP status line"),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n",
                "connection closed while reading HTTP headers",
            ),
            (ACCEPT_RESPONSE[:-2], "connection closed while reading HTTP headers"),
        ],
        ids=["nothing", "status-line", "after-status-line", "before-empty-line"],
    )
    def test_eof_mid_response(self, data: bytes, cause: str) -> None:
        protocol = sent_request()
        if data:
            protocol.receive_data(data)
        assert protocol.handshake_exc is None
        protocol.receive_eof()
        assert protocol.events_received() == []
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc) == "did not receive a valid HTTP response"
        assert type(exc.__cause__) is EOFError
        assert str(exc.__cause__) == cause
        assert protocol.state is State.CLOSED
        assert protocol.close_expected()
        assert protocol.data_to_send() == [SEND_EOF]
        # Idempotent, and data after EOF is ignored.
        protocol.receive_eof()
        protocol.receive_data(ACCEPT_RESPONSE)
        assert protocol.data_to_send() == []
        assert protocol.events_received() == []
        assert protocol.state is State.CLOSED

    def test_eof_mid_body_in_one_chunk(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response("Content-Length: 10", status="403 Forbidden", body=b"abc"))
        protocol.receive_eof()
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert type(exc.__cause__) is EOFError
        assert protocol.state is State.CLOSED
        assert protocol.data_to_send() == [SEND_EOF]

    def test_eof_mid_body_says_body(self) -> None:
        protocol = sent_request()
        protocol.receive_data(response("Content-Length: 10", status="403 Forbidden", body=b"abc"))
        protocol.receive_eof()
        exc = protocol.handshake_exc
        assert type(exc) is InvalidMessage
        assert str(exc.__cause__) == "connection closed while reading HTTP body"


class TestStates:
    def test_created_open_skips_the_handshake(self) -> None:
        protocol = ClientProtocol("ws://example.com/", state=State.OPEN)
        protocol.receive_data(server_frame(TEXT, b"x"))
        assert protocol.events_received() == [Frame(TEXT, b"x")]
        assert protocol.request is None
        assert protocol.response is None

    def test_response_after_eof_is_ignored(self) -> None:
        protocol = sent_request()
        protocol.receive_eof()
        protocol.receive_data(ACCEPT_RESPONSE)
        assert protocol.events_received() == []
        assert protocol.state is State.CLOSED


class TestLogging:
    def test_debug_logs_the_handshake(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("test.anyws.client")
        logger.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG, logger="test.anyws.client"):
            protocol = make_client(logger=logger)
            protocol.send_request(protocol.connect(user_agent_header=None))
            protocol.receive_data(response("Content-Length: 2", status="403 Forbidden", body=b"no"))
        messages = [record.getMessage() for record in caplog.records]
        assert "> GET /chat HTTP/1.1" in messages
        assert "> Host: example.com" in messages
        assert "< HTTP/1.1 403 Forbidden" in messages
        assert "< [body] (2 bytes)" in messages
        assert "! invalid handshake: server rejected WebSocket connection: HTTP 403" in messages


# Random input ----------------------------------------------------------------


# Responses assembled at random: each required line is usually there, sometimes
# wrong or missing; optional lines, valid or not, are added; the order varies.
REQUIRED_LINES = [
    (UPGRADE, ["Upgrade: h2c", "Upgrade: ,"]),
    (CONNECTION, ["Connection: close", "Connection: Upgrade;"]),
    (ACCEPT_LINE, ["Sec-WebSocket-Accept: x", ""]),
]
OPTIONAL_LINES = [
    "Sec-WebSocket-Protocol: chat",
    "Sec-WebSocket-Protocol: other",
    "Sec-WebSocket-Protocol: chat, chat",
    "Sec-WebSocket-Protocol: ,",
    "Sec-WebSocket-Extensions: x-xor",
    "Sec-WebSocket-Extensions: x-xor; reject",
    'Sec-WebSocket-Extensions: x-xor; a="b"',
    "Sec-WebSocket-Extensions: x-other",
    "Sec-WebSocket-Extensions: ;",
    "Content-Length: 3",
    "Content-Length: x",
    "Transfer-Encoding: chunked",
    "Server: test",
    "X-Latin: \xe9t\xe9",
    " folded",
    "No-Colon",
]
STATUS_LINES = [
    "HTTP/1.1 101 Switching Protocols",
    "HTTP/1.1 101",
    "HTTP/1.1 200 OK",
    "HTTP/1.1 403 Forbidden",
    "HTTP/1.0 101 Switching Protocols",
    "HTTP/1.1 999 Nope",
    "garbage",
]


#: Where to cut the input, as offsets taken modulo its length plus one.
CUTS = st.lists(st.integers(0, 2**16), max_size=8)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the ``cuts`` offsets (modulo its length plus one)."""
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = STATUS_LINES[0] if draw(st.booleans()) else draw(st.sampled_from(STATUS_LINES))
    lines = []
    for good, bad in REQUIRED_LINES:
        lines.append(good if draw(st.integers(0, 7)) else draw(st.sampled_from(bad)))
    lines += draw(st.lists(st.sampled_from(OPTIONAL_LINES), max_size=4))
    lines = [line for line in draw(st.permutations(lines)) if line]
    head = "\r\n".join([status, *lines]) + "\r\n\r\n"
    tail = draw(st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", server_frame(TEXT, b"hi")]))
    return head.encode("latin-1") + tail + draw(st.binary(max_size=20))


def check_client_after(protocol: ClientProtocol, chunks: list[bytes]) -> None:
    """Feed ``chunks`` then EOF; the protocol never raises and ends in a sane state."""
    output: list[bytes] = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        protocol.events_received()
        output += protocol.data_to_send()
    protocol.receive_eof()
    protocol.events_received()
    output += protocol.data_to_send()
    assert protocol.state is State.CLOSED
    assert output.count(SEND_EOF) == 1
    assert output[-1] == SEND_EOF
    exc = protocol.handshake_exc
    if exc is None:
        # Only a valid 101 leaves no handshake exception.
        assert protocol.response is not None
        assert protocol.response.status_code == 101
    else:
        assert isinstance(exc, InvalidHandshake)
        assert exc.__cause__ is None or isinstance(exc.__cause__, (WebSocketException, EOFError))


class TestRandomInput:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=300), CUTS)
    def test_random_bytes_never_raise(self, data: bytes, cuts: list[int]) -> None:
        protocol = sent_request(subprotocols=["chat"], extensions=[FakeClientFactory()])
        check_client_after(protocol, split_at(data, cuts))

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(responses(), CUTS)
    def test_random_responses_never_raise(self, data: bytes, cuts: list[int]) -> None:
        protocol = sent_request(subprotocols=["chat"], extensions=[FakeClientFactory()])
        check_client_after(protocol, split_at(data, cuts))

    @settings(max_examples=25, deadline=None)
    @given(CUTS)
    def test_any_split_of_a_valid_response(self, cuts: list[int]) -> None:
        protocol = sent_request()
        events = []
        for chunk in split_at(
            ACCEPT_RESPONSE + server_frame(TEXT, b"Hello") + server_frame(PING), cuts
        ):
            protocol.receive_data(chunk)
            events += protocol.events_received()
        assert protocol.state is State.OPEN
        assert isinstance(events[0], Response)
        assert events[1:] == [Frame(TEXT, b"Hello"), Frame(PING, b"")]
