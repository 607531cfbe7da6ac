"""permessage-deflate (RFC 7692): negotiation, compression through two protocols,
bounded decompression, the per-message switch, and interop with websockets."""

from __future__ import annotations

import os
import random
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anyws.exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from anyws.sansio import (
    ClientProtocol,
    Close,
    Frame,
    Opcode,
    Protocol,
    Request,
    Response,
    ServerProtocol,
    Side,
)
from anyws.sansio._frames import serialize_frame
from anyws.sansio.extensions import (
    ClientPerMessageDeflateFactory,
    ExtensionParameter,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)

from .helpers import MASK


TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
PING, PONG, CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE

Client = ClientPerMessageDeflateFactory
Server = ServerPerMessageDeflateFactory

SNCT: ExtensionParameter = ("server_no_context_takeover", None)
CNCT: ExtensionParameter = ("client_no_context_takeover", None)
CMWB: ExtensionParameter = ("client_max_window_bits", None)


def smwb(bits: int | str) -> ExtensionParameter:
    return ("server_max_window_bits", str(bits))


def cmwb(bits: int | str) -> ExtensionParameter:
    return ("client_max_window_bits", str(bits))


def settings_of(ext: PerMessageDeflate) -> tuple[bool, bool, int, int]:
    return (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    )


# Wire helpers ----------------------------------------------------------------


class WireFrame:
    """A frame as parsed from raw bytes, RSV bits included, unmasked."""

    def __init__(self, opcode: int, fin: bool, rsv1: bool, payload: bytes) -> None:
        self.opcode, self.fin, self.rsv1, self.payload = opcode, fin, rsv1, payload

    def __repr__(self) -> str:
        return f"WireFrame({self.opcode}, fin={self.fin}, rsv1={self.rsv1}, {self.payload!r})"


def parse_wire(data: bytes) -> list[WireFrame]:
    frames = []
    pos = 0
    while pos < len(data):
        head, second = data[pos], data[pos + 1]
        length = second & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        mask = None
        if second & 0x80:
            mask = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        pos += length
        if mask is not None:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append(WireFrame(head & 0x0F, bool(head & 0x80), bool(head & 0x40), payload))
    return frames


def take(protocol: Protocol) -> bytes:
    return b"".join(protocol.data_to_send())


def frames_of(protocol: Protocol) -> list[Frame]:
    return [event for event in protocol.events_received() if isinstance(event, Frame)]


def deliver(data: bytes, protocol: Protocol) -> list[Frame]:
    protocol.receive_data(data)
    return frames_of(protocol)


def data_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A frame as a client sends it (masked)."""
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK)


def negotiate(
    client_factory: ClientPerMessageDeflateFactory, server_factory: ServerPerMessageDeflateFactory
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    response, server_ext = server_factory.process_request_params(
        client_factory.get_request_params(), []
    )
    client_ext = client_factory.process_response_params(response, [])
    return client_ext, server_ext


def pair(
    client_ext: PerMessageDeflate,
    server_ext: PerMessageDeflate,
    max_size: int | None = 2**20,
) -> tuple[Protocol, Protocol]:
    return (
        Protocol(Side.CLIENT, extensions=[client_ext], max_size=max_size),
        Protocol(Side.SERVER, extensions=[server_ext], max_size=max_size),
    )


def message(frames: Sequence[Frame]) -> bytes:
    return b"".join(frame.data for frame in frames)


def compressible(size: int, seed: int = 0) -> bytes:
    """Text-like data that deflates well but not trivially."""
    rng = random.Random(seed)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(300)
    ]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def bomb(size_mib: int) -> bytes:
    """Raw DEFLATE data (sync-flushed, tail stripped) inflating to ``size_mib`` MiB of zeros.

    A block that encodes 1 MiB of zeros after a window of zeros doesn't depend on its
    position, so it is built once and repeated: no need to deflate the whole thing.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\x00" * 2**20
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    rest = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (first + rest * (size_mib - 1))[:-4]


# Negotiation: the client factory --------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "params"),
    [
        ({}, [CMWB]),
        ({"client_max_window_bits": None}, []),
        ({"client_max_window_bits": 10}, [cmwb(10)]),
        ({"client_max_window_bits": 8}, [cmwb(8)]),
        ({"server_max_window_bits": 8, "client_max_window_bits": None}, [smwb(8)]),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 10,
                "client_max_window_bits": 12,
            },
            [SNCT, CNCT, smwb(10), cmwb(12)],
        ),
    ],
)
def test_client_request_params(kwargs: dict[str, Any], params: list[ExtensionParameter]) -> None:
    assert Client(**kwargs).get_request_params() == params


# (client configuration, server response) -> (remote_nct, local_nct, remote_bits, local_bits)
CLIENT_ACCEPTS = [
    # The server may add parameters the client didn't ask for, except client_max_window_bits.
    ({}, [], (False, False, 15, 15)),
    ({}, [SNCT], (True, False, 15, 15)),
    ({}, [CNCT], (False, True, 15, 15)),
    ({}, [smwb(10)], (False, False, 10, 15)),
    ({}, [smwb(8)], (False, False, 8, 15)),
    ({}, [cmwb(9)], (False, False, 15, 9)),
    ({}, [cmwb(8)], (False, False, 15, 8)),
    ({}, [SNCT, CNCT, smwb(9), cmwb(11)], (True, True, 9, 11)),
    ({}, [cmwb(11), smwb(9), CNCT, SNCT], (True, True, 9, 11)),
    ({"client_max_window_bits": None}, [], (False, False, 15, 15)),
    ({"client_max_window_bits": None}, [smwb(12)], (False, False, 12, 15)),
    # An offered client_max_window_bits=N holds when unanswered; the answer may lower it.
    ({"client_max_window_bits": 12}, [], (False, False, 15, 12)),
    ({"client_max_window_bits": 12}, [cmwb(12)], (False, False, 15, 12)),
    ({"client_max_window_bits": 12}, [cmwb(8)], (False, False, 15, 8)),
    # server_no_context_takeover must be confirmed.
    ({"server_no_context_takeover": True}, [SNCT], (True, False, 15, 15)),
    # client_no_context_takeover binds the client even unanswered.
    ({"client_no_context_takeover": True}, [], (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [CNCT], (False, True, 15, 15)),
    # server_max_window_bits=N must be answered with M <= N.
    ({"server_max_window_bits": 10}, [smwb(10)], (False, False, 10, 15)),
    ({"server_max_window_bits": 10}, [smwb(8)], (False, False, 8, 15)),
]


@pytest.mark.parametrize(("kwargs", "response", "expected"), CLIENT_ACCEPTS)
def test_client_accepts(
    kwargs: dict[str, Any], response: list[ExtensionParameter], expected: tuple[object, ...]
) -> None:
    extension = Client(**kwargs).process_response_params(response, [])
    assert settings_of(extension) == expected


CLIENT_REFUSES = [
    # Parameters the offer rules out.
    ({"client_max_window_bits": None}, [cmwb(10)], NegotiationError),
    ({"client_max_window_bits": 12}, [cmwb(13)], NegotiationError),
    ({"server_no_context_takeover": True}, [], NegotiationError),
    ({"server_max_window_bits": 10}, [], NegotiationError),
    ({"server_max_window_bits": 10}, [smwb(11)], NegotiationError),
    # Malformed answers.
    ({}, [SNCT, SNCT], DuplicateParameter),
    ({}, [CNCT, CNCT], DuplicateParameter),
    ({}, [smwb(10), smwb(10)], DuplicateParameter),
    ({}, [cmwb(10), cmwb(11)], DuplicateParameter),
    ({}, [("mystery", None)], InvalidParameterName),
    ({}, [("Server_No_Context_Takeover", None)], InvalidParameterName),
    ({}, [("server_no_context_takeover", "1")], InvalidParameterValue),
    ({}, [("client_no_context_takeover", "true")], InvalidParameterValue),
    ({}, [("server_max_window_bits", None)], InvalidParameterValue),
    ({}, [CMWB], InvalidParameterValue),  # a value is required in a response
    *[({}, [smwb(value)], InvalidParameterValue) for value in ("7", "16", "08", "+9", "9.0", "")],
    *[({}, [cmwb(value)], InvalidParameterValue) for value in ("0", "16", "015", "x")],
]


@pytest.mark.parametrize(("kwargs", "response", "error"), CLIENT_REFUSES)
def test_client_refuses(
    kwargs: dict[str, Any], response: list[ExtensionParameter], error: type[Exception]
) -> None:
    with pytest.raises(error) as exc_info:
        Client(**kwargs).process_response_params(response, [])
    assert isinstance(exc_info.value, NegotiationError)


def test_client_refuses_a_second_acceptance() -> None:
    with pytest.raises(NegotiationError):
        Client().process_response_params([], [PerMessageDeflate()])


# Negotiation: the server factory --------------------------------------------


# (server configuration, client offer) -> (response, (remote_nct, local_nct, remote, local))
SERVER_ACCEPTS = [
    ({}, [], [], (False, False, 15, 15)),
    ({}, [CMWB], [], (False, False, 15, 15)),
    ({}, [cmwb(10)], [cmwb(10)], (False, False, 10, 15)),  # echoed: a smaller inflate window
    ({}, [SNCT], [SNCT], (False, True, 15, 15)),
    ({}, [CNCT], [CNCT], (True, False, 15, 15)),
    ({}, [smwb(10)], [smwb(10)], (False, False, 15, 10)),
    ({}, [smwb(8)], [smwb(8)], (False, False, 15, 8)),
    ({}, [cmwb(8)], [cmwb(8)], (False, False, 8, 15)),
    (
        {},
        [SNCT, CNCT, smwb(9), cmwb(11)],
        [SNCT, CNCT, smwb(9), cmwb(11)],
        (True, True, 11, 9),
    ),
    # The server's limits: imposed when the client allows it, a smaller request wins.
    (
        {"server_max_window_bits": 12, "client_max_window_bits": 12},
        [],
        [smwb(12)],
        (False, False, 15, 12),
    ),
    (
        {"server_max_window_bits": 12, "client_max_window_bits": 12},
        [CMWB],
        [smwb(12), cmwb(12)],
        (False, False, 12, 12),
    ),
    (
        {"server_max_window_bits": 12, "client_max_window_bits": 12},
        [smwb(10), cmwb(9)],
        [smwb(10), cmwb(9)],
        (False, False, 9, 10),
    ),
    (
        {"server_max_window_bits": 12, "client_max_window_bits": 12},
        [smwb(14), cmwb(14)],
        [smwb(12), cmwb(12)],
        (False, False, 12, 12),
    ),
    ({"server_max_window_bits": 8}, [], [smwb(8)], (False, False, 15, 8)),
    # No context takeover, imposed or granted.
    ({"server_no_context_takeover": True}, [], [SNCT], (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [], [CNCT], (True, False, 15, 15)),
    ({"client_no_context_takeover": True}, [CNCT], [CNCT], (True, False, 15, 15)),
    (
        {"client_max_window_bits": 10, "require_client_max_window_bits": True},
        [CMWB],
        [cmwb(10)],
        (False, False, 10, 15),
    ),
]


@pytest.mark.parametrize(("kwargs", "offer", "response", "expected"), SERVER_ACCEPTS)
def test_server_accepts(
    kwargs: dict[str, Any],
    offer: list[ExtensionParameter],
    response: list[ExtensionParameter],
    expected: tuple[object, ...],
) -> None:
    params, extension = Server(**kwargs).process_request_params(offer, [])
    assert params == response
    assert settings_of(extension) == expected


SERVER_DECLINES = [
    ({"client_max_window_bits": 10, "require_client_max_window_bits": True}, [], NegotiationError),
    ({}, [SNCT, SNCT], DuplicateParameter),
    ({}, [CMWB, cmwb(10)], DuplicateParameter),
    ({}, [smwb(10), smwb(12)], DuplicateParameter),
    ({}, [("x-unknown", None)], InvalidParameterName),
    ({}, [("client_no_context_takeover", "yes")], InvalidParameterValue),
    ({}, [("server_max_window_bits", None)], InvalidParameterValue),
    *[({}, [smwb(value)], InvalidParameterValue) for value in ("7", "16", "010", "-9", "a")],
    *[({}, [cmwb(value)], InvalidParameterValue) for value in ("1", "16", "09", "")],
]


@pytest.mark.parametrize(("kwargs", "offer", "error"), SERVER_DECLINES)
def test_server_declines(
    kwargs: dict[str, Any], offer: list[ExtensionParameter], error: type[Exception]
) -> None:
    with pytest.raises(error) as exc_info:
        Server(**kwargs).process_request_params(offer, [])
    assert isinstance(exc_info.value, NegotiationError)


def test_server_declines_a_second_acceptance() -> None:
    with pytest.raises(NegotiationError):
        Server().process_request_params([], [PerMessageDeflate()])


# Every response a server builds is one its client accepts, with mirrored settings.
OFFERS = [
    {},
    {"client_max_window_bits": None},
    {"client_max_window_bits": 9},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 8, "client_max_window_bits": 8},
    {"server_max_window_bits": 13, "client_max_window_bits": 14},
]
CONFIGS = [
    {},
    {"server_max_window_bits": 12, "client_max_window_bits": 12},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 10},
]


@pytest.mark.parametrize("offer", OFFERS)
@pytest.mark.parametrize("config", CONFIGS)
def test_negotiation_agrees(offer: dict[str, Any], config: dict[str, Any]) -> None:
    client_ext, server_ext = negotiate(Client(**offer), Server(**config))
    assert client_ext.remote_no_context_takeover == server_ext.local_no_context_takeover
    assert client_ext.local_no_context_takeover == server_ext.remote_no_context_takeover
    # Each side inflates with a window at least as large as the peer deflates with.
    assert client_ext.remote_max_window_bits >= server_ext.local_max_window_bits
    assert server_ext.remote_max_window_bits >= client_ext.local_max_window_bits
    client, server = pair(client_ext, server_ext)
    data = compressible(5000)
    client.send_binary(data)
    assert message(deliver(take(client), server)) == data
    server.send_binary(data)
    assert message(deliver(take(server), client)) == data


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": False},
        {"client_max_window_bits": "10"},
        {"compress_settings": {"wbits": -12}},
        {"compress_settings": {"zdict": b"x"}},
        {"compress_settings": {"memLevel": 10}},
        {"compress_settings": {"level": 11}},
        {"compress_settings": {"mystery": 1}},
        {"min_size": -1},
    ],
)
def test_client_factory_rejects_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Client(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 16},
        {"client_max_window_bits": True},
        {"client_max_window_bits": 7},
        {"require_client_max_window_bits": True},
        {"compress_settings": {"wbits": 15}},
        {"compress_settings": {"memLevel": 0}},
        {"min_size": -5},
    ],
)
def test_server_factory_rejects_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Server(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"remote_max_window_bits": 7},
        {"local_max_window_bits": 16},
        {"compress_settings": {"wbits": 9}},
        {"min_size": -1},
    ],
)
def test_extension_rejects_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(**kwargs)


def test_reprs() -> None:
    assert "client_max_window_bits=True" in repr(Client())
    assert "require_client_max_window_bits=False" in repr(Server())
    assert repr(PerMessageDeflate(min_size=10)).startswith("PerMessageDeflate(")


def test_enable_helpers() -> None:
    (client_factory,) = enable_client_permessage_deflate(None)
    assert isinstance(client_factory, Client)
    assert client_factory.compress_settings == {"memLevel": 5}
    assert client_factory.client_max_window_bits is True
    (server_factory,) = enable_server_permessage_deflate([])
    assert isinstance(server_factory, Server)
    assert server_factory.server_max_window_bits == 12
    assert server_factory.client_max_window_bits == 12
    assert server_factory.compress_settings == {"memLevel": 5}

    # An existing factory is kept, with its settings; the input isn't modified.
    mine = Client(server_no_context_takeover=True)
    given_list = [mine]
    assert enable_client_permessage_deflate(given_list) == [mine]
    assert enable_client_permessage_deflate(given_list) is not given_list
    theirs = Server(min_size=10)
    assert enable_server_permessage_deflate((theirs,)) == [theirs]

    # The defaults negotiate 12-bit windows both ways.
    client_ext, server_ext = negotiate(client_factory, server_factory)
    assert settings_of(client_ext) == (False, False, 12, 12)
    assert settings_of(server_ext) == (False, False, 12, 12)


def test_opening_handshake() -> None:
    """Through ClientProtocol and ServerProtocol, with a fallback offer."""
    client = ClientProtocol(
        "ws://example.com/",
        extensions=[
            Client(client_max_window_bits=None, server_no_context_takeover=True),
            Client(),
        ],
    )
    client.send_request(client.connect())
    server = ServerProtocol(
        extensions=[Server(client_max_window_bits=10, require_client_max_window_bits=True)]
    )
    server.receive_data(take(client))
    (request,) = server.events_received()
    assert isinstance(request, Request)
    assert request.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_no_context_takeover, permessage-deflate; client_max_window_bits"
    )
    response = server.accept(request)
    # The first offer is declined (no client_max_window_bits), the second accepted.
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; client_max_window_bits=10"
    )
    server.send_response(response)
    client.receive_data(take(server))
    assert isinstance(client.events_received()[0], Response)
    (client_ext,) = client.extensions
    (server_ext,) = server.extensions
    assert isinstance(client_ext, PerMessageDeflate)
    assert isinstance(server_ext, PerMessageDeflate)
    assert settings_of(client_ext) == (False, False, 15, 10)
    assert settings_of(server_ext) == (False, False, 10, 15)
    client.send_text("hello " * 100)
    wire = take(client)
    assert parse_wire(wire)[0].rsv1
    assert message(deliver(wire, server)) == b"hello " * 100


# Compressing through two protocols -----------------------------------------


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_round_trip(bits: int, no_context_takeover: bool) -> None:
    client_ext, server_ext = negotiate(
        Client(
            server_no_context_takeover=no_context_takeover,
            client_no_context_takeover=no_context_takeover,
            server_max_window_bits=bits,
            client_max_window_bits=bits,
        ),
        Server(),
    )
    client, server = pair(client_ext, server_ext)
    payloads = [compressible(3000, seed) for seed in range(3)] * 2 + [b"", os.urandom(500), b"x"]
    for sender, receiver in [(client, server), (server, client)]:
        for i, payload in enumerate(payloads):
            if i % 2:
                sender.send_binary(payload)
            else:
                sender.send_text(payload)
            wire = take(sender)
            (wire_frame,) = parse_wire(wire)
            assert wire_frame.rsv1
            (frame,) = deliver(wire, receiver)
            assert frame.data == payload
            assert frame.opcode is (BINARY if i % 2 else TEXT)
            assert not frame.rsv1


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_context_takeover(no_context_takeover: bool) -> None:
    """With context takeover, a repeated message refers to the previous one."""
    client_ext, server_ext = negotiate(
        Client(client_no_context_takeover=no_context_takeover), Server()
    )
    client, server = pair(client_ext, server_ext)
    payload = os.urandom(2000)  # incompressible on its own
    sizes = []
    for _ in range(3):
        client.send_binary(payload)
        wire = take(client)
        sizes.append(len(wire))
        assert message(deliver(wire, server)) == payload
    if no_context_takeover:
        assert sizes[0] == sizes[1] == sizes[2]
        assert client_ext._encoder is None  # dropped between messages
        assert server_ext._decoder is None
    else:
        assert sizes[1] < sizes[0] // 10
        assert client_ext._encoder is not None


def test_compression_shrinks_the_wire() -> None:
    client, server = pair(*negotiate(Client(), Server()))
    payload = compressible(100_000)
    client.send_binary(payload)
    wire = take(client)
    assert len(wire) < len(payload) // 2
    assert message(deliver(wire, server)) == payload


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_fragmented_message(no_context_takeover: bool) -> None:
    client, server = pair(
        *negotiate(
            Client(
                client_no_context_takeover=no_context_takeover,
                server_no_context_takeover=no_context_takeover,
            ),
            Server(),
        )
    )
    for sender, receiver in [(client, server), (server, client)]:
        for _ in range(2):
            pieces = [b"caf\xc3", b"\xa9 ", b"", compressible(4000), b"", b"end"]
            sender.send_text(pieces[0], fin=False)
            for piece in pieces[1:-1]:
                sender.send_continuation(piece, fin=False)
            sender.send_continuation(pieces[-1], fin=True)
            wire = take(sender)
            wire_frames = parse_wire(wire)
            assert [f.rsv1 for f in wire_frames] == [True] + [False] * (len(pieces) - 1)
            assert [f.opcode for f in wire_frames] == [TEXT] + [CONT] * (len(pieces) - 1)
            frames = deliver(wire, receiver)
            assert [frame.data for frame in frames] == pieces
            assert [frame.fin for frame in frames] == [False] * (len(pieces) - 1) + [True]


def test_fragmented_message_ending_with_an_empty_fragment() -> None:
    """A final fragment with nothing to flush is a lone stored-block header (7.2.3.6)."""
    extension = PerMessageDeflate()
    first = extension.encode(Frame(TEXT, b"hello", fin=False))
    last = extension.encode(Frame(CONT, b"", fin=True))
    assert first.rsv1
    assert not last.rsv1
    assert first.data.endswith(b"\x00\x00\xff\xff")
    # Whatever zlib does with a repeated flush, the message decodes with zlib alone.
    inflated = zlib.decompressobj(wbits=-15).decompress(
        first.data + last.data + b"\x00\x00\xff\xff"
    )
    assert inflated == b"hello"


def test_empty_final_flush() -> None:
    """When zlib has nothing to flush, the final fragment becomes a single 0x00."""

    class Silent:
        def compress(self, data: bytes) -> bytes:
            return b""

        def flush(self, mode: int) -> bytes:
            return b""

    extension = PerMessageDeflate()
    first = extension.encode(Frame(BINARY, b"hello", fin=False))
    extension._encoder = Silent()  # type: ignore[assignment]
    last = extension.encode(Frame(CONT, b"", fin=True))
    assert last.data == b"\x00"
    decoder = PerMessageDeflate()
    assert decoder.decode(first).data == b"hello"
    assert decoder.decode(last).data == b""


def test_control_frames_interleaved() -> None:
    client, server = pair(*negotiate(Client(), Server()))
    payload = compressible(3000)
    client.send_binary(payload[:1000], fin=False)
    client.send_ping(b"ping " * 5)
    client.send_continuation(payload[1000:2000], fin=False)
    client.send_pong(b"unsolicited")
    client.send_continuation(payload[2000:], fin=True)
    wire = take(client)
    wire_frames = parse_wire(wire)
    assert [(f.opcode, f.rsv1) for f in wire_frames] == [
        (BINARY, True),
        (PING, False),
        (CONT, False),
        (PONG, False),
        (CONT, False),
    ]
    assert wire_frames[1].payload == b"ping " * 5  # never compressed
    frames = deliver(wire, server)
    assert [frame.opcode for frame in frames] == [BINARY, PING, CONT, PONG, CONT]
    assert message([f for f in frames if f.opcode < 8]) == payload
    # The automatic pong goes out uncompressed too.
    (pong,) = parse_wire(take(server))
    assert (pong.opcode, pong.rsv1, pong.payload) == (PONG, False, b"ping " * 5)
    # Closing works as usual.
    client.send_close(1000, "bye")
    (close,) = parse_wire(take(client))
    assert not close.rsv1
    assert Close.parse(close.payload) == Close(1000, "bye")


def test_extension_passes_control_frames_through() -> None:
    extension = PerMessageDeflate()
    for opcode in (PING, PONG, CLOSE):
        frame = Frame(opcode, b"\x03\xe8")
        assert extension.encode(frame) is frame
        assert extension.decode(frame, max_size=0) is frame


# The per-message switch and min_size ----------------------------------------


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_skip_next_message(no_context_takeover: bool) -> None:
    client_ext, server_ext = negotiate(
        Client(client_no_context_takeover=no_context_takeover), Server()
    )
    client, server = pair(client_ext, server_ext)
    first = compressible(2000, 1)
    client.send_text(first)
    assert message(deliver(take(client), server)) == first

    client_ext.skip_next_message = True
    client.send_text(first)
    assert client_ext.skip_next_message is False  # one shot
    (raw,) = parse_wire(wire := take(client))
    assert (raw.rsv1, raw.payload) == (False, first)
    assert message(deliver(wire, server)) == first

    # The next message is compressed again, and context takeover still lines up on
    # both sides: the uncompressed message entered neither window.
    client.send_text(first)
    (compressed,) = parse_wire(wire := take(client))
    assert compressed.rsv1
    if not no_context_takeover:
        assert len(compressed.payload) < 50
    assert message(deliver(wire, server)) == first


def test_skip_next_message_fragmented() -> None:
    client, server = pair(*negotiate(Client(), Server()))
    client_ext = client.extensions[0]
    assert isinstance(client_ext, PerMessageDeflate)
    client_ext.skip_next_message = True
    client.send_binary(b"abc", fin=False)
    client_ext.skip_next_message = True  # too late for this message: applies to the next
    client.send_continuation(b"def", fin=True)
    client.send_binary(b"ghi")
    client.send_binary(b"jkl")
    wire = take(client)
    assert [(f.rsv1, f.payload) for f in parse_wire(wire)[:3]] == [
        (False, b"abc"),
        (False, b"def"),
        (False, b"ghi"),
    ]
    assert parse_wire(wire)[3].rsv1
    assert [frame.data for frame in deliver(wire, server)] == [b"abc", b"def", b"ghi", b"jkl"]


def test_min_size() -> None:
    client, server = pair(*negotiate(Client(min_size=100), Server(min_size=1024)))
    for sender, receiver, threshold in [(client, server, 100), (server, client, 1024)]:
        small = compressible(threshold - 1)
        large = compressible(threshold)
        sender.send_binary(small)
        sender.send_binary(large)
        # Fragmented messages are compressed whatever their size: it's unknown upfront.
        sender.send_binary(b"a", fin=False)
        sender.send_continuation(b"b", fin=True)
        wire = take(sender)
        assert [f.rsv1 for f in parse_wire(wire)] == [False, True, True, False]
        assert parse_wire(wire)[0].payload == small
        assert [f.data for f in deliver(wire, receiver)] == [small, large, b"a", b"b"]


def test_min_size_attribute_is_live() -> None:
    extension = PerMessageDeflate()
    assert extension.encode(Frame(BINARY, b"x")).rsv1
    extension.min_size = 2
    assert not extension.encode(Frame(BINARY, b"x")).rsv1
    assert extension.encode(Frame(BINARY, b"xy")).rsv1


def test_uncompressed_messages_from_the_peer() -> None:
    """RSV1 clear: the message is taken as is, fragments included."""
    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()])
    compressor = zlib.compressobj(wbits=-15)
    wire = (
        data_frame(TEXT, b"plain ", fin=False)
        + data_frame(CONT, b"text", fin=True)
        + data_frame(BINARY, (compressor.compress(b"x") + compressor.flush(2))[:-4], rsv1=True)
        + data_frame(BINARY, b"raw")
    )
    frames = deliver(wire, server)
    assert [frame.data for frame in frames] == [b"plain ", b"text", b"x", b"raw"]
    assert server.parser_exc is None


# Bounded decompression -------------------------------------------------------


def test_bomb() -> None:
    """~128 KiB inflating to 128 MiB fails with 1009, with memory bounded by max_size."""
    payload = bomb(128)
    assert len(payload) < 160 * 1024
    # Check the bomb's size without holding it: inflate by 8 MiB steps.
    decoder, total, pending = zlib.decompressobj(wbits=-15), 0, payload + b"\x00\x00\xff\xff"
    while pending:
        total += len(decoder.decompress(pending, 8 * 2**20))
        pending = decoder.unconsumed_tail
    assert total == 128 * 2**20

    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()], max_size=2**20)
    wire = data_frame(BINARY, payload, rsv1=True)
    tracemalloc.start()
    try:
        server.receive_data(wire)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the frame (twice: buffer and unmasked copy) and 1 MiB of output
    assert isinstance(server.parser_exc, PayloadTooBig)
    assert frames_of(server) == []
    (close,) = parse_wire(take(server))
    assert Close.parse(close.payload).code == 1009


def test_bomb_in_fragments() -> None:
    """Each fragment is bounded by what the message may still grow by."""
    client = Protocol(Side.CLIENT, extensions=[PerMessageDeflate()], max_size=2**20)
    compressor = zlib.compressobj(wbits=-15)

    def zeros(size: int) -> bytes:
        return compressor.compress(b"\x00" * size) + compressor.flush(zlib.Z_SYNC_FLUSH)

    wire = serialize_frame(BINARY, zeros(2**18), fin=False, rsv1=True)
    wire += serialize_frame(CONT, zeros(2**18), fin=False)
    frames = deliver(wire, client)
    assert sum(len(frame.data) for frame in frames) == 2**19
    # Another 3/4 MiB pushes the message over 1 MiB: the frame fails, whatever follows.
    wire = serialize_frame(CONT, zeros(3 * 2**18), fin=False)
    wire += serialize_frame(CONT, zeros(2**18)[:-4], fin=True)
    frames = deliver(wire, client)
    assert frames == []
    assert isinstance(client.parser_exc, PayloadTooBig)
    assert client.parser_exc.max_size == 2**20  # the limit, not what was left of it
    (close,) = parse_wire(take(client))
    assert Close.parse(close.payload).code == 1009


@pytest.mark.parametrize("fragmented", [False, True])
def test_message_of_exactly_max_size(fragmented: bool) -> None:
    size = 10_000
    for extra, ok in [(0, True), (1, False)]:
        server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()], max_size=size)
        sender = PerMessageDeflate()
        payload = os.urandom(size + extra)
        if fragmented:
            frames = [
                sender.encode(Frame(BINARY, payload[:4000], fin=False)),
                sender.encode(Frame(CONT, payload[4000:], fin=True)),
            ]
        else:
            frames = [sender.encode(Frame(BINARY, payload))]
        wire = b"".join(data_frame(f.opcode, f.data, fin=f.fin, rsv1=f.rsv1) for f in frames)
        received = deliver(wire, server)
        if ok:
            assert message(received) == payload
            assert server.parser_exc is None
        else:
            assert isinstance(server.parser_exc, PayloadTooBig)


def test_decode_limits_directly() -> None:
    sender = PerMessageDeflate()
    frame = sender.encode(Frame(BINARY, b"a" * 1000))
    for max_size, ok in [(None, True), (1000, True), (999, False), (0, False), (-1, False)]:
        receiver = PerMessageDeflate()
        if ok:
            assert receiver.decode(frame, max_size=max_size).data == b"a" * 1000
        else:
            with pytest.raises(PayloadTooBig):
                receiver.decode(frame, max_size=max_size)
    # An empty message fits in 0 bytes.
    empty = PerMessageDeflate().encode(Frame(TEXT, b""))
    assert PerMessageDeflate().decode(empty, max_size=0).data == b""


# Invalid input from the peer -------------------------------------------------


def test_rsv1_on_continuation_frame() -> None:
    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()])
    sender = PerMessageDeflate()
    first = sender.encode(Frame(TEXT, b"abc", fin=False))
    second = sender.encode(Frame(CONT, b"def", fin=True))
    wire = data_frame(TEXT, first.data, fin=False, rsv1=True)
    wire += data_frame(CONT, second.data, fin=True, rsv1=True)
    deliver(wire, server)
    assert isinstance(server.parser_exc, ProtocolError)
    assert "continuation" in str(server.parser_exc)
    (close,) = parse_wire(take(server))
    assert Close.parse(close.payload).code == 1002


def test_corrupt_data() -> None:
    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()])
    deliver(data_frame(BINARY, b"\xff\xff\xff\xff", rsv1=True), server)
    assert isinstance(server.parser_exc, ProtocolError)
    assert "decompression failed" in str(server.parser_exc)
    (close,) = parse_wire(take(server))
    assert Close.parse(close.payload).code == 1002


def test_bfinal_block() -> None:
    """A message may end with a final block (7.2.3.4); the next one is a new stream."""
    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()])
    messages = [b"first " * 10, b"second " * 10]
    wire = b""
    for payload in messages:
        compressor = zlib.compressobj(wbits=-15)
        wire += data_frame(BINARY, compressor.compress(payload) + compressor.flush(), rsv1=True)
    assert [frame.data for frame in deliver(wire, server)] == messages
    assert server.parser_exc is None


def test_data_after_bfinal_block() -> None:
    server = Protocol(Side.SERVER, extensions=[PerMessageDeflate()])
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"done") + compressor.flush() + b"junk"
    deliver(data_frame(BINARY, payload, rsv1=True), server)
    assert isinstance(server.parser_exc, ProtocolError)
    assert "after the end" in str(server.parser_exc)


# Window bits of 8 ------------------------------------------------------------


def test_eight_bits_compresses_with_nine_within_a_256_byte_window() -> None:
    """zlib can't deflate with 8 bits; with 9 its matches never reach back beyond 250 bytes."""
    rng = random.Random(8)
    extension = PerMessageDeflate(local_max_window_bits=8, local_no_context_takeover=False)
    decoder = zlib.decompressobj(wbits=-8)  # a strict 256-byte window
    for _ in range(30):
        # Repeats at distances from 1 to 600 bytes, so that a 512-byte window would use
        # references that a 256-byte one rejects.
        data = bytearray(rng.randbytes(rng.randint(1, 50)))
        while len(data) < 20_000:
            distance = rng.randint(1, min(600, len(data)))
            start = len(data) - distance
            data += data[start : start + rng.randint(3, 258)]
            data += rng.randbytes(rng.randint(0, 3))
        frame = extension.encode(Frame(BINARY, bytes(data)))
        assert decoder.decompress(frame.data + b"\x00\x00\xff\xff") == data


def test_eight_bits_decodes() -> None:
    sender = PerMessageDeflate(local_max_window_bits=8)
    receiver = PerMessageDeflate(remote_max_window_bits=8)
    for seed in range(5):
        payload = compressible(5000, seed)
        assert receiver.decode(sender.encode(Frame(TEXT, payload))).data == payload


# Interop with websockets ------------------------------------------------------

websockets_pmd = pytest.importorskip("websockets.extensions.permessage_deflate")
websockets_frames = pytest.importorskip("websockets.frames")
websockets_protocol = pytest.importorskip("websockets.protocol")


def theirs_from(ours: PerMessageDeflate) -> Any:
    """websockets' extension for the peer of ``ours``."""
    return websockets_pmd.PerMessageDeflate(
        ours.local_no_context_takeover,
        ours.remote_no_context_takeover,
        ours.local_max_window_bits,
        ours.remote_max_window_bits,
    )


INTEROP_SETTINGS = [
    (False, False, 15, 15),
    (True, True, 15, 15),
    (False, True, 9, 12),
    (True, False, 12, 9),
]


@pytest.mark.parametrize("config", INTEROP_SETTINGS)
def test_interop_frames(config: tuple[bool, bool, int, int]) -> None:
    ours = PerMessageDeflate(*config)
    theirs = theirs_from(ours)
    their_frame = websockets_frames.Frame
    their_opcode = websockets_frames.Opcode
    payloads = [compressible(3000, seed) for seed in range(3)] * 2 + [b"", os.urandom(300)]

    # Ours compresses, theirs decompresses, fragments included.
    for payload in payloads:
        frames = [
            ours.encode(Frame(BINARY, payload[:1000], fin=False)),
            ours.encode(Frame(CONT, payload[1000:], fin=True)),
        ]
        decoded = [
            theirs.decode(their_frame(their_opcode(f.opcode), f.data, f.fin, f.rsv1), max_size=None)
            for f in frames
        ]
        assert b"".join(bytes(f.data) for f in decoded) == payload
        assert not any(f.rsv1 for f in decoded)

    # Theirs compresses, ours decompresses.
    for payload in payloads:
        encoded = [
            theirs.encode(their_frame(websockets_frames.Opcode.TEXT, payload[:10], False)),
            theirs.encode(their_frame(websockets_frames.Opcode.CONT, payload[10:], True)),
        ]
        decoded_frames = [
            ours.decode(Frame(Opcode(int(f.opcode)), bytes(f.data), f.fin, f.rsv1), max_size=2**20)
            for f in encoded
        ]
        assert message(decoded_frames) == payload


@pytest.mark.parametrize("side", [Side.CLIENT, Side.SERVER])
def test_interop_protocols(side: Side) -> None:
    """Our Protocol against websockets' sans-I/O protocol, over the wire, both ways."""
    their_side = (
        websockets_protocol.Side.SERVER if side is Side.CLIENT else websockets_protocol.Side.CLIENT
    )
    their_ext: Any
    if side is Side.CLIENT:
        # Their server answers our client's offer.
        factory = Client(client_max_window_bits=11, server_max_window_bits=10)
        response, their_ext = websockets_pmd.ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12
        ).process_request_params(factory.get_request_params(), [])
        our_ext = factory.process_response_params(response, [])
        assert settings_of(our_ext) == (False, False, 10, 11)
    else:
        # Our server answers their client's offer.
        their_factory = websockets_pmd.ClientPerMessageDeflateFactory(
            client_max_window_bits=True, server_no_context_takeover=True
        )
        response, our_ext = Server(client_max_window_bits=10).process_request_params(
            their_factory.get_request_params(), []
        )
        their_ext = their_factory.process_response_params(response, [])
        assert settings_of(our_ext) == (False, True, 10, 15)
    ours = Protocol(side, extensions=[our_ext])
    theirs = websockets_protocol.Protocol(their_side, max_size=2**20)
    theirs.extensions = [their_ext]

    payloads = [compressible(5000, seed).decode() for seed in range(3)] * 2
    for payload in payloads:
        ours.send_text(payload.encode())
        theirs.receive_data(take(ours))
        (event,) = theirs.events_received()
        assert event.data.decode() == payload

        theirs.send_text(payload.encode())
        (frame,) = deliver(b"".join(theirs.data_to_send()), ours)
        assert frame.data == payload.encode()

    # Fragmented, with a ping in between, and an uncompressed message.
    ours.send_binary(b"one", fin=False)
    ours.send_ping(b"p")
    ours.send_continuation(b"two", fin=True)
    our_ext.skip_next_message = True
    ours.send_binary(b"three")
    theirs.receive_data(take(ours))
    events = theirs.events_received()
    assert [bytes(event.data) for event in events] == [b"one", b"p", b"two", b"three"]


# Properties ------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.tuples(st.booleans(), st.booleans(), st.integers(8, 15), st.integers(8, 15)),
    messages=st.lists(
        st.tuples(
            st.lists(st.binary(max_size=300), min_size=1, max_size=4),
            st.booleans(),
        ),
        max_size=6,
    ),
)
def test_any_fragmentation_round_trips(
    config: tuple[bool, bool, int, int], messages: list[tuple[list[bytes], bool]]
) -> None:
    remote_nct, local_nct, remote_bits, local_bits = config
    client = Protocol(
        Side.CLIENT, extensions=[PerMessageDeflate(remote_nct, local_nct, remote_bits, local_bits)]
    )
    server = Protocol(
        Side.SERVER, extensions=[PerMessageDeflate(local_nct, remote_nct, local_bits, remote_bits)]
    )
    client_ext = client.extensions[0]
    assert isinstance(client_ext, PerMessageDeflate)
    for fragments, skip in messages:
        client_ext.skip_next_message = skip
        client.send_binary(fragments[0], fin=len(fragments) == 1)
        for i, fragment in enumerate(fragments[1:], 2):
            client.send_continuation(fragment, fin=i == len(fragments))
        wire = take(client)
        assert parse_wire(wire)[0].rsv1 is not skip
        assert [frame.data for frame in deliver(wire, server)] == fragments
    assert server.parser_exc is None


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rsv1_on_a_control_frame_fails_the_connection(opcode: Opcode) -> None:
    """RFC 7692, section 6.1: permessage-deflate never applies to control frames."""
    client = Protocol(Side.CLIENT, extensions=[PerMessageDeflate()])
    frames = deliver(serialize_frame(opcode, b"", rsv1=True), client)
    assert frames == []
    assert isinstance(client.parser_exc, ProtocolError)
    (close,) = parse_wire(take(client))
    assert Close.parse(close.payload) == Close(1002, "reserved bits must be 0")


def test_compressed_frame_far_over_max_size_fails_at_its_header() -> None:
    """A compressed frame can't be much larger than a message: no need to buffer it."""
    client = Protocol(Side.CLIENT, extensions=[PerMessageDeflate()], max_size=2**20)
    header = serialize_frame(Opcode.BINARY, b"\x00" * (2**21), rsv1=True)[:10]
    assert deliver(header, client) == []
    assert isinstance(client.parser_exc, PayloadTooBig)
    (close,) = parse_wire(take(client))
    assert Close.parse(close.payload).code == 1009


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_incompressible_large_message_is_sent_uncompressed(no_context_takeover: bool) -> None:
    """A message of 64 KiB or more whose first 64 KiB don't deflate by 3% goes out as it is."""
    client, server = pair(
        *negotiate(Client(client_no_context_takeover=no_context_takeover), Server()),
        max_size=None,
    )
    text = compressible(200_000, 2)
    client.send_binary(text)
    (first,) = parse_wire(wire := take(client))
    assert first.rsv1
    assert len(first.payload) < len(text) // 2
    assert message(deliver(wire, server)) == text

    noise = os.urandom(2**20)
    client.send_binary(noise)
    (raw,) = parse_wire(wire := take(client))
    assert (raw.rsv1, raw.payload) == (False, noise)
    assert message(deliver(wire, server)) == noise

    # The skipped message entered neither side's window: the same text again
    # still decodes, and with context takeover it compresses against the first.
    client.send_binary(text)
    (again,) = parse_wire(wire := take(client))
    assert again.rsv1
    if not no_context_takeover:
        assert len(again.payload) < len(first.payload)
    assert message(deliver(wire, server)) == text


def test_small_incompressible_message_is_still_compressed() -> None:
    """Below 64 KiB there is no probe: the message is compressed as before."""
    client, server = pair(*negotiate(Client(), Server()))
    noise = os.urandom(65535)
    client.send_binary(noise)
    (raw,) = parse_wire(wire := take(client))
    assert raw.rsv1
    assert message(deliver(wire, server)) == noise
