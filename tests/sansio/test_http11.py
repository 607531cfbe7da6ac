from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from anyws.exceptions import (
    InvalidHeaderValue,
    InvalidMessage,
    SecurityError,
    WebSocketException,
)
from anyws.sansio._headers import Headers
from anyws.sansio._http11 import (
    MAX_BODY_SIZE,
    MAX_HEADERS_SIZE,
    MAX_LINE_LENGTH,
    MAX_NUM_HEADERS,
    Request,
    Response,
    parse_request,
    parse_response,
)


#: What the parsers may raise: anyws' errors, and EOFError for an incomplete message
#: at the end of the stream (as in websockets).
PARSE_ERRORS = (WebSocketException, EOFError)


REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)

Parser = Callable[..., Any]


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Cut ``data`` into pieces of the given sizes (cycled), then the rest."""
    pos = 0
    index = 0
    while pos < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        yield data[pos : pos + size]
        pos += size
        index += 1


def feed(parse: Parser, data: bytes, sizes: list[int], *, hint: bool, eof: bool = False) -> Any:
    """Feed ``data`` in pieces to ``parse`` as an I/O layer would, then EOF if asked."""
    buffer = bytearray()
    scanned = 0
    for piece in pieces(data, sizes):
        buffer += piece
        result = parse(buffer, start=scanned if hint else 0)
        if result is not None:
            return result
        scanned = len(buffer)
    if eof:
        return parse(buffer, start=scanned if hint else 0, eof=True)
    return None


def headers_of(block: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\n" + block + b"\r\n"


# Value objects.


class TestRequest:
    def test_serialize(self) -> None:
        request = Request("/chat", Headers({"Host": "example.com"}))
        assert request.serialize() == b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n"

    def test_frozen(self) -> None:
        request = Request("/", Headers())
        with pytest.raises(AttributeError):
            request.path = "/other"  # type: ignore[misc]

    @pytest.mark.parametrize("path", ["", "/a b", "/\r\nX: y", "/\xe9", "/\x00"])
    def test_invalid_path(self, path: str) -> None:
        with pytest.raises(ValueError, match="invalid request target"):
            Request(path, Headers())

    def test_round_trip(self) -> None:
        parsed = parse_request(REQUEST)
        assert parsed is not None
        request, size = parsed
        assert size == len(REQUEST)
        assert request.serialize() == REQUEST


class TestResponse:
    def test_serialize(self) -> None:
        response = Response(404, "Not Found", Headers({"Content-Length": "2"}), b"no")
        assert response.serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"

    def test_default_body(self) -> None:
        assert Response(101, "Switching Protocols", Headers()).body == b""

    @pytest.mark.parametrize("status_code", [0, 99, 600, 1000, -101])
    def test_invalid_status_code(self, status_code: int) -> None:
        with pytest.raises(ValueError, match="invalid status code"):
            Response(status_code, "", Headers())

    @pytest.mark.parametrize("reason", ["OK\r\nX: y", "\x00", "\u263a"])
    def test_invalid_reason_phrase(self, reason: str) -> None:
        with pytest.raises(ValueError, match="invalid reason phrase"):
            Response(200, reason, Headers())

    def test_round_trip(self) -> None:
        parsed = parse_response(RESPONSE_101)
        assert parsed is not None
        response, size = parsed
        assert size == len(RESPONSE_101)
        assert response.serialize() == RESPONSE_101


# Requests.


class TestParseRequest:
    def test_parse(self) -> None:
        parsed = parse_request(REQUEST)
        assert parsed is not None
        request, size = parsed
        assert request.path == "/chat?x=1"
        assert request.headers["host"] == "server.example.com"
        assert request.headers["Sec-WebSocket-Version"] == "13"
        assert list(request.headers) == [
            "host",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
        ]
        assert size == len(REQUEST)

    def test_trailing_data_is_left(self) -> None:
        for extra in [b"\x81\x05hello", b"\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"]:
            parsed = parse_request(REQUEST + extra)
            assert parsed is not None
            assert parsed[1] == len(REQUEST)

    def test_bytearray(self) -> None:
        assert parse_request(bytearray(REQUEST)) == parse_request(REQUEST)

    def test_every_prefix_is_incomplete(self) -> None:
        for end in range(len(REQUEST)):
            assert parse_request(REQUEST[:end]) is None

    def test_byte_by_byte_with_hint(self) -> None:
        assert feed(parse_request, REQUEST, [1], hint=True) == parse_request(REQUEST)

    def test_byte_by_byte_without_hint(self) -> None:
        assert feed(parse_request, REQUEST, [1], hint=False) == parse_request(REQUEST)

    @given(st.lists(st.integers(1, 40), max_size=20), st.booleans())
    @settings(max_examples=50, deadline=None)
    def test_random_chunks(self, sizes: list[int], hint: bool) -> None:
        data = REQUEST + b"\x81\x00"
        assert feed(parse_request, data, sizes, hint=hint) == parse_request(data)

    def test_hint_out_of_range_is_clamped(self) -> None:
        assert parse_request(REQUEST, start=-5) == parse_request(REQUEST)
        assert parse_request(REQUEST[:10], start=1000) is None

    def test_header_values(self) -> None:
        parsed = parse_request(
            headers_of(
                b"Host: h\r\n"
                b"X-Empty:\r\n"
                b"X-Spaces: \t a  b \t\r\n"
                b"X-Latin-1: caf\xe9\r\n"
                b"X-Repeated: 1\r\n"
                b"x-repeated: 2\r\n"
            )
        )
        assert parsed is not None
        headers = parsed[0].headers
        assert headers["X-Empty"] == ""
        assert headers["X-Spaces"] == "a  b"
        assert headers["X-Latin-1"] == "caf\xe9"
        assert headers.get_all("X-Repeated") == ["1", "2"]

    def test_absolute_form_target(self) -> None:
        parsed = parse_request(b"GET ws://example.com/chat HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parsed is not None
        assert parsed[0].path == "ws://example.com/chat"

    def test_content_length_zero(self) -> None:
        parsed = parse_request(headers_of(b"Host: h\r\nContent-Length: 0\r\n"))
        assert parsed is not None

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"POST / HTTP/1.1\r\n\r\n", "unsupported HTTP method; expected GET: b'POST'"),
            (b"get / HTTP/1.1\r\n\r\n", "unsupported HTTP method; expected GET: b'get'"),
            (b"GET / HTTP/1.0\r\n\r\n", "unsupported HTTP version; expected HTTP/1.1: b'HTTP/1.0'"),
            (b"GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version; expected HTTP/1.1: b'HTTP/2.0'"),
            (b"GET / http/1.1\r\n\r\n", "invalid HTTP request line: b'GET / http/1.1'"),
            (b"GET / HTTP/11\r\n\r\n", "invalid HTTP request line: b'GET / HTTP/11'"),
            (b"GET /  HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET /  HTTP/1.1'"),
            (b"GET  / HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET  / HTTP/1.1'"),
            (b"GET / HTTP/1.1 \r\n\r\n", "invalid HTTP request line: b'GET / HTTP/1.1 '"),
            (b"GET\t/ HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET\\t/ HTTP/1.1'"),
            (b"GET /\x7f HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET /\\x7f HTTP/1.1'"),
            (b"GET /\xe9 HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET /\\xe9 HTTP/1.1'"),
            (b"GET HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'GET HTTP/1.1'"),
            (b"\r\n\r\n", "invalid HTTP request line: b''"),
            (b"\r\nGET / HTTP/1.1\r\n\r\n", "invalid HTTP request line: b''"),
            (b"G\x00T / HTTP/1.1\r\n\r\n", "invalid HTTP request line: b'G\\x00T / HTTP/1.1'"),
            (
                b"GET /" + b"a" * 100 + b" HTTP/1.1 x\r\n\r\n",
                "invalid HTTP request line: b'GET /" + "a" * 55 + "'... (116 bytes)",
            ),
        ],
    )
    def test_invalid_request_line(self, data: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_request(data)
        assert type(exc_info.value) is InvalidMessage
        assert str(exc_info.value) == message

    @pytest.mark.parametrize(
        ("block", "message"),
        [
            (b"Host: a\r\n b\r\n", "obsolete line folding in HTTP request isn't supported"),
            (b"Host: a\r\n\tb\r\n", "obsolete line folding in HTTP request isn't supported"),
            (b" Host: a\r\n", "obsolete line folding in HTTP request isn't supported"),
            (b"Host a\r\n", "invalid HTTP header line: b'Host a'"),
            (b"Host : a\r\n", "invalid HTTP header name: b'Host '"),
            (b": a\r\n", "invalid HTTP header name: b''"),
            (b"Ho(st: a\r\n", "invalid HTTP header name: b'Ho(st'"),
            (b"H\xe9: a\r\n", "invalid HTTP header name: b'H\\xe9'"),
            (b"Host: a\x00b\r\n", "invalid HTTP header value: b'a\\x00b'"),
            (b"Host: a\x7f\r\n", "invalid HTTP header value: b'a\\x7f'"),
            (b"Host: \x1b[31m\r\n", "invalid HTTP header value: b'\\x1b[31m'"),
            (b"Host: a\x0bb\r\n", "invalid HTTP header value: b'a\\x0bb'"),
        ],
    )
    def test_invalid_header(self, block: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_request(headers_of(block))
        assert str(exc_info.value) == message

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", "bare LF in HTTP request"),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", "bare LF in HTTP request"),
            (b"GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n", "bare LF in HTTP request"),
            (b"GET / HTTP/1.1\n\n", "bare LF in HTTP request"),
            (b"\nGET / HTTP/1.1\r\n\r\n", "bare LF in HTTP request"),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", "bare CR in HTTP request"),
            (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "bare CR in HTTP request"),
            (b"GET / HTTP/1.1\r\r\n\r\n", "bare CR in HTTP request"),
            (b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", "bare CR in HTTP request"),
        ],
    )
    def test_bare_cr_or_lf(self, data: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_request(data)
        assert str(exc_info.value) == message
        # Byte by byte, it's detected as soon as the offending byte arrives.
        with pytest.raises(InvalidMessage) as exc_info:
            feed(parse_request, data, [1], hint=True)
        assert str(exc_info.value) == message

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"GET / HTTP/1.1\nHost", "bare LF in HTTP request"),
            (b"GET / HTTP/1.1\r\nHost: a\rb", "bare CR in HTTP request"),
        ],
    )
    def test_bare_cr_or_lf_in_incomplete_request(self, data: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_request(data)
        assert str(exc_info.value) == message

    def test_pending_cr_at_end_of_buffer(self) -> None:
        assert parse_request(b"GET / HTTP/1.1\r") is None
        assert parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r") is None

    @pytest.mark.parametrize(
        ("block", "exc_type", "message"),
        [
            (b"Content-Length: 1\r\n", InvalidMessage, "unsupported request body"),
            (b"Transfer-Encoding: chunked\r\n", InvalidMessage, "unsupported request body"),
            (b"Transfer-Encoding: identity\r\n", InvalidMessage, "unsupported request body"),
            (
                b"Content-Length: abc\r\n",
                InvalidHeaderValue,
                "invalid Content-Length header: abc",
            ),
            (
                b"Content-Length: -1\r\n",
                InvalidHeaderValue,
                "invalid Content-Length header: -1",
            ),
            (
                b"Content-Length: 0\r\nContent-Length: 1\r\n",
                InvalidHeaderValue,
                "invalid Content-Length header: 0, 1",
            ),
            (b"Content-Length: \r\n", InvalidHeaderValue, "empty Content-Length header"),
            (
                b"Content-Length: " + b"9" * 5000 + b"\r\n",
                SecurityError,
                f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes",
            ),
        ],
    )
    def test_body(self, block: bytes, exc_type: type[Exception], message: str) -> None:
        with pytest.raises(exc_type) as exc_info:
            parse_request(headers_of(b"Host: h\r\n" + block))
        assert type(exc_info.value) is exc_type
        assert str(exc_info.value) == message

    def test_repeated_identical_content_lengths(self) -> None:
        data = headers_of(b"Content-Length: 0, 0\r\nContent-Length: 00\r\n")
        with pytest.raises(InvalidHeaderValue):
            parse_request(data)  # "0" and "00" differ as text
        assert parse_request(headers_of(b"Content-Length: 0, 0\r\nContent-Length: 0\r\n"))

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "connection closed while reading HTTP request line"),
            (b"GET / HT", "connection closed while reading HTTP request line"),
            (b"GET / HTTP/1.1\r", "connection closed while reading HTTP request line"),
            (b"GET / HTTP/1.1\r\n", "connection closed while reading HTTP headers"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r", "connection closed while reading HTTP headers"),
        ],
    )
    def test_eof(self, data: bytes, message: str) -> None:
        with pytest.raises(EOFError) as exc_info:
            parse_request(data, eof=True)
        assert str(exc_info.value) == message

    def test_eof_after_complete_request(self) -> None:
        assert parse_request(REQUEST, eof=True) == parse_request(REQUEST)


# Limits.


class TestLimits:
    def test_line_at_limit(self) -> None:
        line = b"GET /" + b"a" * (MAX_LINE_LENGTH - 14) + b" HTTP/1.1"
        assert len(line) == MAX_LINE_LENGTH
        assert parse_request(line + b"\r\n\r\n") is not None
        assert parse_request(line + b"\r") is None
        assert parse_request(line) is None

    def test_request_line_too_long(self) -> None:
        line = b"GET /" + b"a" * (MAX_LINE_LENGTH - 13) + b" HTTP/1.1"
        message = f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes"
        with pytest.raises(SecurityError, match=message):
            parse_request(line + b"\r\n\r\n")
        with pytest.raises(SecurityError, match=message):
            parse_request(line)
        # Even if the CR has arrived.
        with pytest.raises(SecurityError, match=message):
            parse_request(line + b"\r")

    def test_header_line_at_limit(self) -> None:
        header = b"X: " + b"a" * (MAX_LINE_LENGTH - 3)
        assert parse_request(headers_of(header + b"\r\n")) is not None
        assert parse_request(b"GET / HTTP/1.1\r\n" + header) is None

    def test_header_line_too_long(self) -> None:
        header = b"X: " + b"a" * (MAX_LINE_LENGTH - 2)
        with pytest.raises(SecurityError, match="HTTP line exceeds limit"):
            parse_request(headers_of(header + b"\r\n"))
        with pytest.raises(SecurityError, match="HTTP line exceeds limit"):
            parse_request(b"GET / HTTP/1.1\r\n" + header)

    def test_endless_line_fails_at_the_limit(self) -> None:
        # Fed in 1 KiB pieces with the hint, a line without CRLF fails once it passes the
        # limit, not when the head limit is reached.
        buffer = bytearray(b"GET / HTTP/1.1\r\nX: ")

        def trickle() -> None:
            scanned = 0
            while parse_request(buffer, start=scanned) is None:
                scanned = len(buffer)
                buffer.extend(b"a" * 1024)

        with pytest.raises(SecurityError, match="HTTP line exceeds limit"):
            trickle()
        assert MAX_LINE_LENGTH < len(buffer) < MAX_LINE_LENGTH + 2048

    def test_huge_buffer_at_once_fails_fast(self) -> None:
        # The checks look at no more than the limits, whatever the size of the buffer.
        t0 = time.process_time()
        for data in [b"a" * 2**22, b"a\r\n" * 2**20, b"\n" * 2**22, b"\r\n" * 2**21 + b"x"]:
            with pytest.raises(WebSocketException):
                parse_request(data)
        assert time.process_time() - t0 < 0.5

    def test_headers_at_limit(self) -> None:
        block = b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(MAX_NUM_HEADERS))
        parsed = parse_request(headers_of(block))
        assert parsed is not None
        assert len(parsed[0].headers) == MAX_NUM_HEADERS

    def test_too_many_headers(self) -> None:
        block = b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(MAX_NUM_HEADERS + 1))
        message = f"more than {MAX_NUM_HEADERS} HTTP headers"
        with pytest.raises(SecurityError, match=message):
            parse_request(headers_of(block))
        # On an incomplete request too.
        with pytest.raises(SecurityError, match=message):
            parse_request(b"GET / HTTP/1.1\r\n" + block)
        with pytest.raises(SecurityError, match=message):
            feed(parse_request, headers_of(block), [7], hint=True)

    def test_headers_size_at_limit(self) -> None:
        line = b"X: " + b"a" * 1000 + b"\r\n"
        head = headers_of(line * 64)
        head = head[:-4] + b"b" * (MAX_HEADERS_SIZE - len(head)) + b"\r\n\r\n"
        assert len(head) == MAX_HEADERS_SIZE
        assert parse_request(head) is not None
        assert feed(parse_request, head, [1000], hint=True) is not None

    def test_headers_too_large(self) -> None:
        line = b"X: " + b"a" * 1000 + b"\r\n"
        head = headers_of(line * 64)
        head = head[:-4] + b"b" * (MAX_HEADERS_SIZE - len(head) + 1) + b"\r\n\r\n"
        message = f"HTTP headers exceed limit of {MAX_HEADERS_SIZE} bytes"
        with pytest.raises(SecurityError, match=message):
            parse_request(head)
        with pytest.raises(SecurityError, match=message):
            parse_request(head[:-1])  # no CRLF CRLF in the first MAX_HEADERS_SIZE bytes
        assert parse_request(head[:-2]) is None
        with pytest.raises(SecurityError, match=message):
            feed(parse_request, head, [1000], hint=True)
        with pytest.raises(SecurityError, match=message):
            feed(parse_request, head, [1], hint=True)

    def test_too_large_head_reports_the_first_error(self) -> None:
        # Complete but over the limit: the error is the one incremental parsing finds.
        head = b"GET / HTTP/1.1\nX: " + b"a" * MAX_HEADERS_SIZE + b"\r\n\r\n"
        with pytest.raises(InvalidMessage, match="bare LF"):
            parse_request(head)

    def test_byte_by_byte_is_linear_with_hint(self) -> None:
        # A head near the size limit, trickled: each call must be cheap. This takes
        # about 0.3 s of CPU; rescanning the buffer at each call, over 5 s.
        line = b"X: " + b"a" * 500 + b"\r\n"
        head = headers_of(line * 120)
        assert len(head) < MAX_HEADERS_SIZE
        t0 = time.process_time()
        assert feed(parse_request, head, [1], hint=True) is not None
        elapsed = time.process_time() - t0
        assert elapsed < 1.5, elapsed


# Responses.


class TestParseResponse:
    def test_101_leaves_trailing_data(self) -> None:
        parsed = parse_response(RESPONSE_101 + b"\x81\x05hello")
        assert parsed is not None
        response, size = parsed
        assert response.status_code == 101
        assert response.reason_phrase == "Switching Protocols"
        assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert response.body == b""
        assert size == len(RESPONSE_101)

    def test_101_ignores_content_length(self) -> None:
        data = b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 5\r\n\r\n"
        assert parse_response(data + b"abcde") == (
            Response(101, "Switching Protocols", Headers({"Content-Length": "5"})),
            len(data),
        )

    @pytest.mark.parametrize(
        ("status_line", "status_code", "reason"),
        [
            (b"HTTP/1.1 101", 101, ""),
            (b"HTTP/1.1 101 ", 101, ""),
            (b"HTTP/1.1 200 OK", 200, "OK"),
            (b"HTTP/1.1 200 Tout  va\tbien, caf\xe9", 200, "Tout  va\tbien, caf\xe9"),
            (b"HTTP/1.1 599 x", 599, "x"),
        ],
    )
    def test_status_line(self, status_line: bytes, status_code: int, reason: str) -> None:
        parsed = parse_response(status_line + b"\r\nContent-Length: 0\r\n\r\n")
        assert parsed is not None
        assert parsed[0].status_code == status_code
        assert parsed[0].reason_phrase == reason

    @pytest.mark.parametrize(
        ("status_line", "message"),
        [
            (b"HTTP/1.0 200 OK", "unsupported HTTP version; expected HTTP/1.1: b'HTTP/1.0'"),
            (b"ICY 200 OK", "invalid HTTP status line: b'ICY 200 OK'"),
            (b"HTTP/1.1", "invalid HTTP status code: b''"),
            (b"HTTP/1.1 20 OK", "invalid HTTP status code: b'20'"),
            (b"HTTP/1.1 2000 OK", "invalid HTTP status code: b'2000'"),
            (b"HTTP/1.1 099 OK", "invalid HTTP status code: b'099'"),
            (b"HTTP/1.1 600 OK", "invalid HTTP status code: b'600'"),
            (b"HTTP/1.1 +20 OK", "invalid HTTP status code: b'+20'"),
            (b"HTTP/1.1  200 OK", "invalid HTTP status code: b''"),
            (b"HTTP/1.1 200 O\x00K", "invalid HTTP reason phrase: b'O\\x00K'"),
            (b"HTTP/1.1 200 O\x7fK", "invalid HTTP reason phrase: b'O\\x7fK'"),
            (b" HTTP/1.1 200 OK", "invalid HTTP status line: b' HTTP/1.1 200 OK'"),
        ],
    )
    def test_invalid_status_line(self, status_line: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_response(status_line + b"\r\n\r\n")
        assert str(exc_info.value) == message

    def test_invalid_header(self) -> None:
        with pytest.raises(InvalidMessage, match="obsolete line folding in HTTP response"):
            parse_response(b"HTTP/1.1 101 OK\r\nUpgrade: a\r\n b\r\n\r\n")
        with pytest.raises(InvalidMessage, match="bare LF in HTTP response"):
            parse_response(b"HTTP/1.1 101 OK\nUpgrade: a\r\n\r\n")

    @pytest.mark.parametrize("status", [100, 102, 204, 304])
    def test_no_body(self, status: int) -> None:
        head = b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status
        parsed = parse_response(head + b"abcde")
        assert parsed is not None
        assert parsed[0].body == b""
        assert parsed[1] == len(head)

    def test_content_length(self) -> None:
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\n"
        assert parse_response(head) is None
        assert parse_response(head + b"abcd") is None
        parsed = parse_response(head + b"abcdeXYZ")
        assert parsed is not None
        assert parsed[0].body == b"abcde"
        assert parsed[1] == len(head) + 5

    def test_content_length_zero(self) -> None:
        head = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        expected = Response(500, "Oops", Headers({"Content-Length": "0"}))
        assert parse_response(head) == (expected, len(head))

    def test_content_length_eof(self) -> None:
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\n"
        with pytest.raises(EOFError, match="connection closed while reading HTTP body"):
            parse_response(head + b"abc", eof=True)

    def test_content_length_limit(self) -> None:
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n"
        body = b"a" * MAX_BODY_SIZE
        parsed = parse_response(head % MAX_BODY_SIZE + body)
        assert parsed is not None
        assert parsed[0].body == body
        message = f"HTTP body of {MAX_BODY_SIZE + 1} bytes exceeds limit of {MAX_BODY_SIZE} bytes"
        with pytest.raises(SecurityError) as exc_info:
            parse_response(head % (MAX_BODY_SIZE + 1))  # before any of the body arrives
        assert str(exc_info.value) == message

    def test_repeated_content_length(self) -> None:
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"
        expected = parse_response(head + b"abc")
        assert expected is not None
        assert expected[0].body == b"abc"
        assert feed(parse_response, head + b"abc", [1], hint=True) == expected

    def test_invalid_content_length(self) -> None:
        with pytest.raises(InvalidHeaderValue, match="invalid Content-Length header: 0x10"):
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n")

    def test_read_until_eof(self) -> None:
        head = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
        assert parse_response(head) is None
        assert parse_response(head + b"not") is None
        parsed = parse_response(head + b"not found", eof=True)
        assert parsed is not None
        assert parsed[0].body == b"not found"
        assert parsed[1] == len(head) + 9
        assert parse_response(head, eof=True) == (
            Response(404, "Not Found", Headers({"Content-Type": "text/plain"})),
            len(head),
        )

    def test_read_until_eof_limit(self) -> None:
        head = b"HTTP/1.1 404 Not Found\r\n\r\n"
        assert parse_response(head + b"a" * MAX_BODY_SIZE, eof=True) is not None
        message = f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes"
        with pytest.raises(SecurityError, match=message):
            parse_response(head + b"a" * (MAX_BODY_SIZE + 1))  # before EOF

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "connection closed while reading HTTP status line"),
            (b"HTTP/1.1 101 Switching", "connection closed while reading HTTP status line"),
            (b"HTTP/1.1 101 OK\r\nUpgrade: w", "connection closed while reading HTTP headers"),
        ],
    )
    def test_eof(self, data: bytes, message: str) -> None:
        with pytest.raises(EOFError) as exc_info:
            parse_response(data, eof=True)
        assert str(exc_info.value) == message

    def test_transfer_encoding_and_content_length(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        with pytest.raises(InvalidMessage) as exc_info:
            parse_response(data)
        assert str(exc_info.value) == "both Transfer-Encoding and Content-Length in response"

    @pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"chunked, chunked", b","])
    def test_unsupported_transfer_encoding(self, coding: bytes) -> None:
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
        with pytest.raises(InvalidMessage) as exc_info:
            parse_response(data)
        assert str(exc_info.value) == f"unsupported Transfer-Encoding: {coding.decode()}"


CHUNKED_HEAD = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"


class TestChunked:
    def test_chunked(self) -> None:
        body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
        parsed = parse_response(CHUNKED_HEAD + body + b"extra")
        assert parsed is not None
        assert parsed[0].body == b"hello, world"
        assert parsed[1] == len(CHUNKED_HEAD) + len(body)

    def test_case_insensitive_coding_and_hex(self) -> None:
        head = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: Chunked\r\n\r\n"
        parsed = parse_response(head + b"A\r\n0123456789\r\n000 ; x\r\n\r\n")
        assert parsed is not None
        assert parsed[0].body == b"0123456789"

    def test_trailers(self) -> None:
        body = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"
        parsed = parse_response(CHUNKED_HEAD + body)
        assert parsed is not None
        assert parsed[0].body == b"abc"
        assert "X-Trailer" not in parsed[0].headers
        assert parsed[1] == len(CHUNKED_HEAD) + len(body)

    def test_incomplete(self) -> None:
        body = b"5\r\nhello\r\n0\r\nX: 1\r\n\r\n"
        for end in range(len(body)):
            assert parse_response(CHUNKED_HEAD + body[:end]) is None

    @given(st.lists(st.integers(1, 20), max_size=20), st.booleans())
    @settings(max_examples=50, deadline=None)
    def test_random_chunks(self, sizes: list[int], hint: bool) -> None:
        data = CHUNKED_HEAD + b"5\r\nhello\r\n2\r\n\r\n\r\n0\r\nX: 1\r\n\r\n\x81\x00"
        expected = parse_response(data)
        assert expected is not None
        assert expected[0].body == b"hello\r\n"
        assert feed(parse_response, data, sizes, hint=hint) == expected

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"x\r\n", "invalid HTTP chunk size: b'x'"),
            (b"-1\r\n", "invalid HTTP chunk size: b'-1'"),
            (b"\r\n", "invalid HTTP chunk size: b''"),
            (b" 5\r\nhello\r\n", "invalid HTTP chunk size: b' 5'"),
            (b"5 \r\nhello\r\n", "invalid HTTP chunk size: b'5 '"),
            (b"5;\x00\r\nhello\r\n", "invalid HTTP chunk size: b'5;\\x00'"),
            (b"1" * 17 + b"\r\n", "invalid HTTP chunk size: b'" + "1" * 17 + "'"),
            (b"5\r\nhelloXY", "HTTP chunk data isn't followed by CRLF"),
            (b"5\nhello\r\n", "bare LF in HTTP response"),
            (b"5\r\nhello\r\n0\r\nX : 1\r\n\r\n", "invalid HTTP header name: b'X '"),
            (
                b"5\r\nhello\r\n0\r\n folded\r\n\r\n",
                "obsolete line folding in HTTP response isn't supported",
            ),
        ],
    )
    def test_invalid(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidMessage) as exc_info:
            parse_response(CHUNKED_HEAD + body)
        assert str(exc_info.value) == message

    @pytest.mark.parametrize(
        "body", [b"", b"5", b"5\r\nhel", b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n", b"0\r\nX: 1"]
    )
    def test_eof(self, body: bytes) -> None:
        with pytest.raises(EOFError) as exc_info:
            parse_response(CHUNKED_HEAD + body, eof=True)
        assert str(exc_info.value) == "connection closed while reading HTTP body"

    def test_body_size_at_limit(self) -> None:
        # The limit applies to the body as transferred, framing included.
        size = MAX_BODY_SIZE - len(b"fffff\r\n\r\n0\r\n\r\n")
        body = b"%x\r\n" % size + b"a" * size + b"\r\n0\r\n\r\n"
        assert len(body) == MAX_BODY_SIZE
        parsed = parse_response(CHUNKED_HEAD + body)
        assert parsed is not None
        assert len(parsed[0].body) == size

    def test_body_too_large(self) -> None:
        message = f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes"
        # Announced by a chunk size, before the data arrives.
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + b"%x\r\n" % MAX_BODY_SIZE)
        # Many small chunks.
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + b"1\r\na\r\n" * (MAX_BODY_SIZE // 6 + 1))
        # A body one byte over, complete.
        size = MAX_BODY_SIZE - len(b"fffff\r\n\r\n0\r\n\r\n")
        body = b"%x\r\n" % (size + 1) + b"a" * (size + 1) + b"\r\n0\r\n\r\n"
        assert len(body) == MAX_BODY_SIZE + 1
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + body)
        # Endless trailers.
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + b"0\r\n" + (b"X: " + b"a" * 8189 + b"\r\n") * 200)

    def test_body_too_large_with_hint(self) -> None:
        data = CHUNKED_HEAD + (b"64\r\n" + b"a" * 100 + b"\r\n") * (MAX_BODY_SIZE // 104 + 1)
        with pytest.raises(SecurityError, match="HTTP body exceeds limit"):
            feed(parse_response, data, [65536], hint=True)

    def test_chunk_size_line_beyond_body_limit(self) -> None:
        size = MAX_BODY_SIZE - len(b"fffff\r\n\r\n") - 2
        body = b"%x\r\n" % size + b"a" * size + b"\r\n"
        assert parse_response(CHUNKED_HEAD + body + b"0\r") is None  # 1 MiB - 1 byte
        with pytest.raises(SecurityError, match="HTTP body exceeds limit"):
            parse_response(CHUNKED_HEAD + body + b"0\r\n")  # no room for the last CRLF
        with pytest.raises(SecurityError, match="HTTP body exceeds limit"):
            parse_response(CHUNKED_HEAD + body + b"0;x")  # incomplete line, over the limit

    def test_chunk_size_line_too_long(self) -> None:
        message = f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes"
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + b"5;" + b"x" * MAX_LINE_LENGTH)
        with pytest.raises(SecurityError, match=message):
            parse_response(CHUNKED_HEAD + b"5;" + b"x" * MAX_LINE_LENGTH + b"\r\n")
        line = b"5;" + b"x" * (MAX_LINE_LENGTH - 2)
        assert parse_response(CHUNKED_HEAD + line) is None
        assert parse_response(CHUNKED_HEAD + line + b"\r\nhello\r\n0\r\n\r\n") is not None

    def test_too_many_trailers(self) -> None:
        trailers = b"X: 1\r\n" * (MAX_NUM_HEADERS + 1)
        with pytest.raises(SecurityError, match=f"more than {MAX_NUM_HEADERS} HTTP trailers"):
            parse_response(CHUNKED_HEAD + b"0\r\n" + trailers + b"\r\n")

    def test_trickled_small_chunks_are_cheap_with_hint(self) -> None:
        # Decoding the chunks again at each call would take over 10 s of CPU here.
        body = b"1\r\na\r\n" * 5000 + b"0\r\n\r\n"
        t0 = time.process_time()
        parsed = feed(parse_response, CHUNKED_HEAD + body, [3], hint=True)
        assert time.process_time() - t0 < 1
        assert parsed is not None
        assert parsed[0].body == b"a" * 5000

    def test_trickled_body_is_cheap_with_hint(self) -> None:
        head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 20000\r\n\r\n"
        t0 = time.process_time()
        parsed = feed(parse_response, head + b"a" * 20000, [1], hint=True)
        assert time.process_time() - t0 < 1
        assert parsed is not None
        assert len(parsed[0].body) == 20000


# Properties.

header_names = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
).filter(lambda name: name.lower() not in ("content-length", "transfer-encoding"))
header_values = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x100) if c != 0x7F]), max_size=30
).map(lambda value: value.strip(" "))
header_lists = st.lists(st.tuples(header_names, header_values), max_size=10)
paths = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


@given(paths, header_lists, st.lists(st.integers(1, 30), max_size=10))
@settings(max_examples=50, deadline=None)
def test_request_round_trip(path: str, fields: list[tuple[str, str]], sizes: list[int]) -> None:
    request = Request(path, Headers(fields))
    data = request.serialize()
    expected = (request, len(data))
    assert parse_request(data + b"\x88\x80") == expected
    assert feed(parse_request, data, sizes, hint=True) == expected
    assert feed(parse_request, data, sizes, hint=False) == expected


@given(
    st.integers(100, 599),
    header_values,
    header_lists,
    st.binary(max_size=50),
    st.lists(st.integers(1, 30), max_size=10),
)
@settings(max_examples=50, deadline=None)
def test_response_round_trip(
    status: int, reason: str, fields: list[tuple[str, str]], body: bytes, sizes: list[int]
) -> None:
    headers = Headers(fields)
    has_body = status >= 200 and status not in (204, 304)
    if has_body:
        headers["Content-Length"] = str(len(body))
    else:
        body = b""
    response = Response(status, reason, headers, body)
    data = response.serialize()
    expected = (response, len(data))
    assert parse_response(data + b"\x88\x80") == expected
    assert feed(parse_response, data, sizes, hint=True) == expected
    assert feed(parse_response, data, sizes, hint=False) == expected


@given(
    st.lists(st.binary(min_size=1, max_size=20), max_size=5),
    st.lists(st.integers(1, 30), max_size=10),
)
@settings(max_examples=50, deadline=None)
def test_chunked_round_trip(chunks: list[bytes], sizes: list[int]) -> None:
    data = CHUNKED_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    parsed = parse_response(data)
    assert parsed is not None
    assert parsed[0].body == b"".join(chunks)
    assert parsed[1] == len(data)
    assert feed(parse_response, data, sizes, hint=True) == parsed
    assert feed(parse_response, data, sizes, hint=False) == parsed


@given(
    st.binary(max_size=300)
    | st.text(alphabet="GET /HTP1.:\r\n \t\x00\x7fa-z", max_size=200).map(str.encode)
)
@settings(max_examples=200, deadline=None)
def test_random_bytes(data: bytes) -> None:
    for parse in (parse_request, parse_response):
        for eof in (False, True):
            try:
                result = parse(data, eof=eof)
            except PARSE_ERRORS:
                continue
            if result is not None:
                assert 0 < result[1] <= len(data)


@given(
    st.sampled_from([REQUEST, RESPONSE_101, CHUNKED_HEAD + b"3\r\nabc\r\n0\r\n\r\n"]),
    st.binary(max_size=20),
    st.integers(-5, 300),
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_wrong_hint(message: bytes, extra: bytes, start: int, eof: bool) -> None:
    # A wrong hint may give a wrong answer, but still no other exception.
    for data in (message + extra, extra + message, message[:-5] + extra):
        for parse in (parse_request, parse_response):
            try:
                parse(data, start=start, eof=eof)
            except PARSE_ERRORS:
                pass


def _messages() -> st.SearchStrategy[bytes]:
    # Mostly well-formed messages with one random mutation: reaches deeper than noise.
    base = st.sampled_from(
        [
            REQUEST,
            RESPONSE_101,
            b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nabc",
            CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX: 1\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\n\r\nbody",
        ]
    )
    return st.tuples(base, st.integers(0, 200), st.binary(max_size=3), st.integers(0, 3)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + t[3] :]
    )


@given(_messages(), st.lists(st.integers(1, 30), max_size=10), st.booleans())
@settings(max_examples=200, deadline=None)
def test_mutated_messages(data: bytes, sizes: list[int], hint: bool) -> None:
    for parse in (parse_request, parse_response):
        try:
            whole = parse(data, eof=True)
        except PARSE_ERRORS:
            whole = None
        try:
            incremental = feed(parse, data, sizes, hint=hint, eof=True)
        except PARSE_ERRORS:
            incremental = None
        # When both succeed, they agree; incremental parsing may stop earlier on an
        # error only if the whole parse fails too.
        if incremental is not None:
            assert whole == incremental
        if whole is not None and incremental is None:
            pytest.fail(f"incremental parsing failed on {data!r}")
