"""Fuzz targets for the sans-I/O core, shared by the fuzzer and the regression tests.

Each target takes arbitrary bytes and checks what the parser promises: peer input
never raises anything but the documented exceptions, a failed connection says why
with the right close code (never 1011, which would be a bug of ours), and no message
exceeds ``max_size``. `fuzzing/run.py` runs them under atheris (``nox -s fuzz``);
tests/test_fuzz_regressions.py replays the inputs of ``fuzzing/regressions/``.

Standard library and anyws only: the tests import it without atheris.
"""

from __future__ import annotations

from collections.abc import Callable

from anyws.exceptions import InvalidHandshake, ProtocolError
from anyws.sansio import ClientProtocol, Frame, Opcode, Protocol, ServerProtocol, Side
from anyws.sansio._headers import (
    build_extension,
    parse_authorization_basic,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)
from anyws.sansio._http11 import parse_request, parse_response
from anyws.sansio.extensions import PerMessageDeflate


__all__ = ["TARGETS"]


def _options(data: bytes, count: int) -> tuple[bytes, bytes]:
    """Split ``data`` into ``count`` option bytes (zero-padded) and the rest."""
    head = data[:count].ljust(count, b"\0")
    return head, data[count:]


def frames(data: bytes, *, deflate: bool = False) -> None:
    """Feed ``data`` to a protocol, in chunks, as a peer would send it."""
    options, payload = _options(data, 4)
    side = Side.SERVER if options[0] & 1 else Side.CLIENT
    max_size = 1 + options[1] * 64
    max_messages = options[2] % 4 or None
    chunk = 1 + options[3] % 64
    extensions = [PerMessageDeflate()] if deflate else []
    protocol = Protocol(side, max_size=max_size, extensions=extensions, max_fragments=8)
    size = 0
    for start in range(0, len(payload) + 1, chunk):
        protocol.receive_data(
            payload[start : start + chunk],
            max_messages=max_messages,
            defer_failure=bool(options[0] & 2),
        )
        while True:
            for event in protocol.events_received():
                assert isinstance(event, Frame)
                if event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    size = len(event.data) if event.opcode is not Opcode.CONT else size
                    if event.opcode is Opcode.CONT:
                        size += len(event.data)
                    assert size <= max_size, (size, max_size)
            protocol.data_to_send()
            if not protocol.paused:
                break
            protocol.receive_data(b"", max_messages=max_messages)
    protocol.receive_eof()
    exc = protocol.parser_exc
    if exc is None:  # the closing handshake: the peer's close frame arrived
        assert protocol.close_rcvd is not None
    else:
        assert isinstance(exc, (ProtocolError, UnicodeDecodeError, EOFError)), repr(exc)
    close = protocol.close_sent
    assert close is None or close.code != 1011, close  # 1011: an exception of ours


def frames_deflate(data: bytes) -> None:
    """`frames` with permessage-deflate negotiated."""
    frames(data, deflate=True)


def http_request(data: bytes) -> None:
    """Parse ``data`` as an opening handshake request, directly and through a protocol."""
    for eof in (False, True):
        try:
            parse_request(data, eof=eof)
        except (InvalidHandshake, EOFError):
            pass
    protocol = ServerProtocol()
    for start in range(0, len(data), 7):
        protocol.receive_data(data[start : start + 7])
    for event in protocol.events_received():
        protocol.send_response(protocol.accept(event))  # type: ignore[arg-type]
        break
    protocol.receive_eof()
    protocol.data_to_send()


def http_response(data: bytes) -> None:
    """Parse ``data`` as the response to an opening handshake request."""
    for eof in (False, True):
        for proxy in (False, True):
            try:
                parse_response(data, eof=eof, proxy=proxy)
            except (InvalidHandshake, EOFError):
                pass
    protocol = ClientProtocol("ws://example.com/")
    protocol.send_request(protocol.connect())
    for start in range(0, len(data), 7):
        protocol.receive_data(data[start : start + 7])
    protocol.receive_eof()
    protocol.events_received()


def headers(data: bytes) -> None:
    """The header grammars: each parser raises InvalidHandshake or parses; round trips hold."""
    text = data.decode("utf-8", "surrogateescape")
    for parse in (parse_connection, parse_upgrade, parse_subprotocol, parse_authorization_basic):
        try:
            parse(text)  # type: ignore[operator]
        except InvalidHandshake:
            pass
    try:
        extensions = parse_extension(text)
    except InvalidHandshake:
        return
    assert parse_extension(build_extension(extensions)) == extensions


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frames": frames,
    "frames_deflate": frames_deflate,
    "http_request": http_request,
    "http_response": http_response,
    "headers": headers,
}
