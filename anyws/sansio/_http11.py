"""The HTTP/1.1 messages of the opening handshake: value objects and incremental parsers.

Strategy: the parsers are pure functions of a growing buffer. Each call looks for
the end of the head (the empty line) and returns ``None`` until the message is
complete, then the message and the number of bytes it took; the bytes after it
belong to the WebSocket framing layer. Only `~anyws.exceptions.WebSocketException`
subclasses come out of them: `InvalidMessage` for a malformed message or a
connection closed too early, `SecurityError` for a message over a limit,
`InvalidHeaderValue` for an unusable ``Content-Length``.

Limits are enforced on incomplete buffers too, so a peer can't make us buffer more
than about `MAX_HEADERS_SIZE` bytes of head (or `MAX_BODY_SIZE` bytes of body)
before we give up, nor hold a line open forever.

Cost of calling a parser again as bytes trickle in: pass ``start``, the length of
the buffer at the previous call that returned ``None`` (the buffer must only have
grown at its end since; ``0``, the default, is always correct).

- `parse_request` then scans the head from there, with a look-back of at most
  `MAX_LINE_LENGTH` bytes (searched in C) to measure the line being received, and
  counts the completed lines again only when new ones arrived (at most
  `MAX_NUM_HEADERS` + 1 times), so a head fed byte by byte costs linear time.
- `parse_response` must first tell whether the head was already complete at the
  previous call, with its body incomplete. That takes a search in C which stops at
  the end of the head if there's one, and else covers the buffer, at most
  `MAX_HEADERS_SIZE` bytes: a response head of 60 KiB fed byte by byte costs about
  1.5 s of CPU, against 0.3 s for a request. (Servers face arbitrary peers; a
  client reads the answer of the server it chose, under its open timeout.) While
  the body arrives, each call looks at the framing headers of the head only, with
  searches in C, and decodes the message again only when it may be complete:
  enough bytes for ``Content-Length``, EOF for a body delimited by EOF, an empty
  line among the new bytes for a chunked body.

Without ``start`` each call rescans the buffer, which the limits bound.
"""

from __future__ import annotations

import dataclasses
import re

from ..exceptions import InvalidHeaderValue, InvalidMessage, SecurityError
from ._headers import Headers


__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEADERS_SIZE",
    "MAX_LINE_LENGTH",
    "MAX_NUM_HEADERS",
    "Request",
    "Response",
    "parse_request",
    "parse_response",
]

#: Longest request line, status line, header line or chunk-size line, CRLF excluded.
#: websockets uses 8192 too; Apache's LimitRequestLine and LimitRequestFieldSize
#: default to 8190 and nginx's large_client_header_buffers to 8 KiB: no legitimate
#: WebSocket handshake comes near it.
MAX_LINE_LENGTH = 8192

#: Most header fields in a head (and trailer fields in a chunked body). websockets
#: allows 128; Apache's LimitRequestFields defaults to 100. Limits hash-table and
#: allocation work per message.
MAX_NUM_HEADERS = 128

#: Largest head, from the first byte of the start line to the empty line included.
#: Browsers send well under 8 KiB (cookies are the bulk of it). h11 bounds an
#: incomplete head at 16 KiB; 64 KiB leaves room for large cookies and tokens while
#: still bounding the memory a peer can make us hold.
MAX_HEADERS_SIZE = 65536

#: Largest body of a response other than 101, as transferred (chunk framing
#: included). websockets uses 1 MiB too: the body of a rejection is only shown to
#: the user, a megabyte is plenty for an error page.
MAX_BODY_SIZE = 2**20

# RFC 7230, section 3.2.6: token = 1*tchar.
_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# field-value without obs-fold: VCHAR, obs-text, SP and HTAB (stripped at both ends).
_FIELD_VALUE_RE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# RFC 7230, section 3.1.1: HTTP-version = HTTP-name "/" DIGIT "." DIGIT.
_HTTP_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
# request-target: any visible US-ASCII character (origin-form or absolute-form).
_REQUEST_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
_REQUEST_TARGET_STR_RE = re.compile(r"[\x21-\x7e]+")
# RFC 7230, section 3.1.2: status-code = 3DIGIT; reason-phrase = *( HTAB / SP / VCHAR / obs-text ).
_STATUS_CODE_RE = re.compile(rb"[0-9]{3}")
_REASON_PHRASE_RE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_REASON_PHRASE_STR_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 7230, section 4.1: chunk-size [ chunk-ext ] CRLF; extensions are ignored. At
# most 16 hex digits: 2**64 is already beyond any limit.
_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?")
_DIGITS_RE = re.compile(r"[0-9]+")

_START_LINE = {"request": "request line", "response": "status line"}

# Statuses without a body (RFC 7230, section 3.3.3), besides 1xx.
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """An opening handshake request: ``GET {path} HTTP/1.1`` and its header fields.

    The headers are a mutable `Headers`, as in websockets. Not for subclassing.

    Raises:
        ValueError: ``path`` is empty or has characters other than visible US-ASCII.
    """

    path: str
    headers: Headers

    def __post_init__(self) -> None:
        if _REQUEST_TARGET_STR_RE.fullmatch(self.path) is None:
            raise ValueError(f"invalid request target: {self.path!r}")

    def serialize(self) -> bytes:
        """Return the request as sent on the wire."""
        return f"GET {self.path} HTTP/1.1\r\n".encode("ascii") + self.headers.serialize()


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """An HTTP/1.1 response to the opening handshake, body included.

    `serialize` writes the headers as they are: whoever builds a response with a body
    sets its ``Content-Length``. The headers are a mutable `Headers`, as in websockets.
    Not for subclassing.

    Raises:
        ValueError: ``status_code`` isn't in 100-599, or ``reason_phrase`` has
            control characters or characters outside ISO-8859-1.
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status_code <= 599:
            raise ValueError(f"invalid status code: {self.status_code}")
        if _REASON_PHRASE_STR_RE.fullmatch(self.reason_phrase) is None:
            raise ValueError(f"invalid reason phrase: {self.reason_phrase!r}")

    def serialize(self) -> bytes:
        """Return the response as sent on the wire."""
        status_line = f"HTTP/1.1 {self.status_code:d} {self.reason_phrase}\r\n"
        return status_line.encode("latin-1") + self.headers.serialize() + self.body


def parse_request(
    buffer: bytes | bytearray, *, start: int = 0, eof: bool = False
) -> tuple[Request, int] | None:
    """Parse an opening handshake request at the start of ``buffer``.

    Args:
        buffer: The bytes received so far.
        start: Optional hint: the length of ``buffer`` at the previous call that
            returned ``None``, to avoid rescanning; see the module docstring.
        eof: The peer closed the connection: ``buffer`` won't grow any more.

    Returns:
        ``None`` if the request is incomplete; else the request and the number of
        bytes it took, the rest of ``buffer`` belonging to the WebSocket connection.

    Raises:
        InvalidMessage: The request is malformed, isn't ``GET ... HTTP/1.1``, or
            has a body.
        EOFError: ``eof`` is set and the request is incomplete (as in websockets).
        InvalidHeaderValue: ``Content-Length`` is invalid.
        SecurityError: The request exceeds a limit.
    """
    head = _parse_head(buffer, start, eof, "request")
    if head is None:
        return None
    lines, size = head
    path = _parse_request_line(lines[0])
    headers = _parse_fields(lines, 1, "request")
    # RFC 6455, section 4.1: the handshake is a GET; RFC 7231, section 4.3.1: "A
    # payload within a GET request message has no defined semantics". Refuse one
    # rather than guess where the WebSocket data starts.
    if "Transfer-Encoding" in headers or _content_length(headers):
        raise InvalidMessage("unsupported request body")
    return Request(path, headers), size


def parse_response(
    buffer: bytes | bytearray, *, eof: bool = False, start: int = 0, proxy: bool = False
) -> tuple[Response, int] | None:
    """Parse a response to the opening handshake at the start of ``buffer``.

    After a 101 response nothing belongs to the response: the rest of ``buffer`` is
    WebSocket data. Other responses have a body framed by ``Content-Length``, by
    chunked transfer coding, or else by the end of the connection, in which case the
    response is only complete when ``eof`` is set. 1xx, 204 and 304 responses have
    no body.

    With ``proxy``, ``buffer`` holds an HTTP proxy's response to ``CONNECT``, which
    ends with its head, as in websockets: after a 2xx response the rest of ``buffer``
    belongs to the tunnel (RFC 7231, section 4.3.6: "A client MUST ignore any
    Content-Length or Transfer-Encoding header fields received in a successful
    response to CONNECT"), and the body of a refusal isn't read, the connection
    being dropped. Some proxies still answer in HTTP/1.0, which is accepted too.

    Args:
        buffer: The bytes received so far.
        eof: The peer closed the connection: ``buffer`` won't grow any more.
        start: Optional hint: the length of ``buffer`` at the previous call that
            returned ``None``, to avoid rescanning; see the module docstring.
        proxy: Parse a proxy's response to ``CONNECT``, as described above.

    Returns:
        ``None`` if the response is incomplete; else the response and the number
        of bytes it took.

    Raises:
        InvalidMessage: The response is malformed or isn't HTTP/1.1.
        EOFError: ``eof`` is set and the response is incomplete (as in websockets).
        InvalidHeaderValue: ``Content-Length`` is invalid.
        SecurityError: The response exceeds a limit.
    """
    start = min(max(start, 0), len(buffer))
    if start and not proxy:
        # Unlike a request, a response may have been complete at the previous call
        # with its body still incomplete. Then its head was valid, and it ends at the
        # first CRLF CRLF, which this finds after scanning the head only.
        end = buffer.find(b"\r\n\r\n", 0, min(start, MAX_HEADERS_SIZE))
        if end != -1:
            if not eof and _body_incomplete(buffer, end + 4, start):
                return None
            start = 0  # Scan the head from its start.
    head = _parse_head(buffer, start, eof, "response")
    if head is None:
        return None
    lines, size = head
    status_code, reason_phrase = _parse_status_line(lines[0], proxy)
    headers = _parse_fields(lines, 1, "response")

    if proxy:
        return Response(status_code, reason_phrase, headers), size

    if status_code < 200 or status_code in _NO_BODY_STATUSES:
        return Response(status_code, reason_phrase, headers), size

    if "Transfer-Encoding" in headers:
        if "Content-Length" in headers:
            # RFC 7230, section 3.3.3 lets Transfer-Encoding win, but both at once
            # is the signature of a request smuggling attempt: refuse it.
            raise InvalidMessage("both Transfer-Encoding and Content-Length in response")
        codings = ", ".join(headers.get_all("Transfer-Encoding"))
        if [c.strip(" \t").lower() for c in codings.split(",") if c.strip(" \t")] != ["chunked"]:
            raise InvalidMessage(f"unsupported Transfer-Encoding: {codings}")
        chunked = _parse_chunked(buffer, size, eof)
        if chunked is None:
            return None
        body, end = chunked
        return Response(status_code, reason_phrase, headers, body), end

    length = _content_length(headers)
    if length is not None:
        if length > MAX_BODY_SIZE:
            raise SecurityError(
                f"HTTP body of {length} bytes exceeds limit of {MAX_BODY_SIZE} bytes"
            )
        end = size + length
        if len(buffer) < end:
            if eof:
                raise EOFError("connection closed while reading HTTP body")
            return None
        return Response(status_code, reason_phrase, headers, bytes(buffer[size:end])), end

    # No framing: the body ends with the connection.
    if len(buffer) - size > MAX_BODY_SIZE:
        raise SecurityError(f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes")
    if not eof:
        return None
    return Response(status_code, reason_phrase, headers, bytes(buffer[size:])), len(buffer)


def _body_incomplete(buffer: bytes | bytearray, size: int, start: int) -> bool:
    """Tell cheaply whether a response body can't be complete yet; ``False`` if unsure.

    The head, of ``size`` bytes, was complete and valid at the previous call, which
    saw ``start`` bytes; decoding it again for every new byte of the body would make
    a trickled body cost quadratic time. This only looks at the framing headers, with
    searches in C, and leaves every decision but "wait" to the full parser.
    """
    status = bytes(buffer[9:12])  # validated: "HTTP/1.1 xxx", unless the hint was wrong
    if not status.isdigit():
        return False
    status_code = int(status)
    if status_code < 200 or status_code in _NO_BODY_STATUSES:
        return False
    head = bytes(buffer[:size]).lower()
    if b"\r\ntransfer-encoding:" in head:
        # A chunked body ends with an empty line: if none arrived since the previous
        # call, it isn't complete. (Past the size limit, let the parser fail.)
        return (
            len(buffer) - size <= MAX_BODY_SIZE
            and start - 3 >= size
            and buffer.find(b"\r\n\r\n", start - 3) == -1
        )
    pos = head.find(b"\r\ncontent-length:")
    if pos != -1:
        pos += len(b"\r\ncontent-length:")
        if head.find(b"\r\ncontent-length:", pos) != -1:
            return False
        value = head[pos : head.find(b"\r\n", pos)].strip(b" \t")
        return value.isdigit() and len(value) < 10 and len(buffer) < size + int(value)
    # The body ends with the connection.
    return len(buffer) - size <= MAX_BODY_SIZE


# Head: framing and limits.


def _parse_head(
    buffer: bytes | bytearray, start: int, eof: bool, what: str
) -> tuple[list[bytes], int] | None:
    """Find the head; return its lines (start line first) and its size with the empty line."""
    start = min(max(start, 0), len(buffer))
    # A previous call found no CRLF CRLF before ``start``; one may straddle it.
    end = buffer.find(b"\r\n\r\n", max(start - 3, 0))
    if end == -1:
        _check_incomplete_head(buffer, start, what)
        # Without CRLF CRLF in the buffer, the head ends beyond it.
        if len(buffer) >= MAX_HEADERS_SIZE:
            raise SecurityError(f"HTTP headers exceed limit of {MAX_HEADERS_SIZE} bytes")
        if eof:
            part = "headers" if b"\n" in buffer else _START_LINE[what]
            raise EOFError(f"connection closed while reading HTTP {part}")
        return None
    size = end + 4
    if size > MAX_HEADERS_SIZE:
        # Fail as if the bytes had come in small pieces: the first MAX_HEADERS_SIZE
        # bytes hold no CRLF CRLF; report what's wrong with them, else their size.
        _check_incomplete_head(buffer[:MAX_HEADERS_SIZE], 0, what)
        raise SecurityError(f"HTTP headers exceed limit of {MAX_HEADERS_SIZE} bytes")
    lines = bytes(buffer[:end]).split(b"\r\n")
    for index, line in enumerate(lines):
        _check_line(line, what)
        if index > MAX_NUM_HEADERS:
            raise SecurityError(f"more than {MAX_NUM_HEADERS} HTTP headers")
    return lines, size


def _check_line(line: bytes, what: str) -> None:
    if b"\n" in line:
        raise InvalidMessage(f"bare LF in HTTP {what}")
    if b"\r" in line:
        raise InvalidMessage(f"bare CR in HTTP {what}")
    if len(line) > MAX_LINE_LENGTH:
        raise SecurityError(f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes")


def _check_incomplete_head(buffer: bytes | bytearray, start: int, what: str) -> None:
    """Apply the checks of `_parse_head`, except the size, to a head being received.

    ``buffer[:start]`` passed them already, except a CR at its very end, which
    may be followed by its LF now.
    """
    length = len(buffer)
    scan = max(start - 1, 0)
    # Scan no further than the limit, which a longer buffer fails anyway: this bounds
    # the loops below when a caller hands over a large buffer at once.
    stop = min(length, MAX_HEADERS_SIZE)
    # Lines end with CRLF, never a bare LF or CR (RFC 7230, section 3.5 allows a
    # recipient to accept a bare LF; we don't, as websockets and h11 in strict mode).
    new_lines = False
    pos = buffer.find(b"\n", scan, stop)
    while pos != -1:
        if pos == 0 or buffer[pos - 1] != 0x0D:
            raise InvalidMessage(f"bare LF in HTTP {what}")
        new_lines = True
        pos = buffer.find(b"\n", pos + 1, stop)
    pos = buffer.find(b"\r", scan, stop)
    while pos != -1 and pos + 1 < length:
        if buffer[pos + 1] != 0x0A:
            raise InvalidMessage(f"bare CR in HTTP {what}")
        pos = buffer.find(b"\r", pos + 1, stop)
    # Complete lines: the start line and header lines, each ending with the only
    # LFs of the buffer now. Count them again only if some were added.
    if new_lines and buffer.count(b"\n", 0, stop) - 1 > MAX_NUM_HEADERS:
        raise SecurityError(f"more than {MAX_NUM_HEADERS} HTTP headers")
    # The line being received, looking back no further than the limit.
    window = max(length - MAX_LINE_LENGTH - 2, 0)
    last_lf = buffer.rfind(b"\n", window)
    if last_lf == -1 and window > 0:
        raise SecurityError(f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes")
    line_length = length - (last_lf + 1)
    if buffer.endswith(b"\r"):
        line_length -= 1
    if line_length > MAX_LINE_LENGTH:
        raise SecurityError(f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes")


# Head: contents.


def _show(data: bytes) -> str:
    """Render untrusted bytes for an error message: escaped and truncated."""
    if len(data) > 80:
        return repr(data[:60]) + f"... ({len(data)} bytes)"
    return repr(data)


def _parse_request_line(line: bytes) -> str:
    # RFC 7230, section 3.1.1: request-line = method SP request-target SP HTTP-version.
    parts = line.split(b" ")
    if (
        len(parts) != 3
        or _TOKEN_RE.fullmatch(parts[0]) is None
        or _REQUEST_TARGET_RE.fullmatch(parts[1]) is None
        or _HTTP_VERSION_RE.fullmatch(parts[2]) is None
    ):
        raise InvalidMessage(f"invalid HTTP request line: {_show(line)}")
    method, target, version = parts
    if version != b"HTTP/1.1":
        raise InvalidMessage(f"unsupported HTTP version; expected HTTP/1.1: {_show(version)}")
    if method != b"GET":
        raise InvalidMessage(f"unsupported HTTP method; expected GET: {_show(method)}")
    return target.decode("ascii")


def _parse_status_line(line: bytes, proxy: bool = False) -> tuple[int, str]:
    # RFC 7230, section 3.1.2: status-line = HTTP-version SP status-code SP reason-phrase.
    # Like h11, accept a status line without the SP before an empty reason phrase.
    version, _, rest = line.partition(b" ")
    if _HTTP_VERSION_RE.fullmatch(version) is None:
        raise InvalidMessage(f"invalid HTTP status line: {_show(line)}")
    if proxy:
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise InvalidMessage(
                f"unsupported HTTP version; expected HTTP/1.1 or HTTP/1.0: {_show(version)}"
            )
    elif version != b"HTTP/1.1":
        raise InvalidMessage(f"unsupported HTTP version; expected HTTP/1.1: {_show(version)}")
    status, _, reason = rest.partition(b" ")
    if _STATUS_CODE_RE.fullmatch(status) is None or not 100 <= int(status) <= 599:
        raise InvalidMessage(f"invalid HTTP status code: {_show(status)}")
    if _REASON_PHRASE_RE.fullmatch(reason) is None:
        raise InvalidMessage(f"invalid HTTP reason phrase: {_show(reason)}")
    return int(status), reason.decode("latin-1")


def _parse_fields(lines: list[bytes], first: int, what: str) -> Headers:
    # RFC 7230, section 3.2: header-field = field-name ":" OWS field-value OWS.
    headers = Headers()
    for line in lines[first:]:
        if line[:1] in (b" ", b"\t"):
            # RFC 7230, section 3.2.4: a server "MUST either reject the message by
            # sending a 400 (Bad Request) [...] or replace each received obs-fold".
            raise InvalidMessage(f"obsolete line folding in HTTP {what} isn't supported")
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidMessage(f"invalid HTTP header line: {_show(line)}")
        if _TOKEN_RE.fullmatch(name) is None:
            # Whitespace before the colon lands here too, as section 3.2.4 requires.
            raise InvalidMessage(f"invalid HTTP header name: {_show(name)}")
        value = value.strip(b" \t")
        if _FIELD_VALUE_RE.fullmatch(value) is None:
            raise InvalidMessage(f"invalid HTTP header value: {_show(value)}")
        headers[name.decode("ascii")] = value.decode("latin-1")
    return headers


def _content_length(headers: Headers) -> int | None:
    """Return the ``Content-Length``, ``None`` without one.

    Several identical values are accepted as one (RFC 7230, section 3.3.2).
    """
    values = headers.get_all("Content-Length")
    if not values:
        return None
    items = [item.strip(" \t") for value in values for item in value.split(",")]
    if _DIGITS_RE.fullmatch(items[0]) is None or any(item != items[0] for item in items):
        raise InvalidHeaderValue("Content-Length", ", ".join(values))
    # Strip leading zeros before int(): a long string of digits is costly to convert
    # (and beyond sys.get_int_max_str_digits, an error).
    digits = items[0].lstrip("0") or "0"
    if len(digits) > len(str(MAX_BODY_SIZE)):
        raise SecurityError(f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes")
    return int(digits)


# Body: chunked transfer coding.


def _parse_chunked(
    buffer: bytes | bytearray, body_start: int, eof: bool
) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``body_start``; ``None`` if it's incomplete.

    RFC 7230, section 4.1::

        chunked-body = *chunk last-chunk trailer-part CRLF
        chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
        last-chunk   = 1*("0") [ chunk-ext ] CRLF
        trailer-part = *( header-field CRLF )
    """
    length = len(buffer)
    chunks: list[bytes] = []
    pos = body_start
    while True:
        line, pos = _read_body_line(buffer, pos, body_start, eof)
        if line is None:
            return None
        match = _CHUNK_SIZE_RE.fullmatch(line)
        if match is None:
            raise InvalidMessage(f"invalid HTTP chunk size: {_show(line)}")
        chunk_size = int(match.group(1), 16)
        if chunk_size == 0:
            break
        end = pos + chunk_size
        if end + 2 - body_start > MAX_BODY_SIZE:
            raise SecurityError(f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes")
        if length < end + 2:
            if eof:
                raise EOFError("connection closed while reading HTTP body")
            return None
        if buffer[end : end + 2] != b"\r\n":
            raise InvalidMessage("HTTP chunk data isn't followed by CRLF")
        chunks.append(bytes(buffer[pos:end]))
        pos = end + 2

    # Trailer fields: validated like header fields, then dropped.
    trailers: list[bytes] = []
    while True:
        line, pos = _read_body_line(buffer, pos, body_start, eof)
        if line is None:
            return None
        if not line:
            break
        trailers.append(line)
        if len(trailers) > MAX_NUM_HEADERS:
            raise SecurityError(f"more than {MAX_NUM_HEADERS} HTTP trailers")
    _parse_fields(trailers, 0, "response")
    return b"".join(chunks), pos


def _read_body_line(
    buffer: bytes | bytearray, pos: int, body_start: int, eof: bool
) -> tuple[bytes | None, int]:
    """Read a CRLF-terminated line of a chunked body; ``None`` if it's incomplete."""
    eol = buffer.find(b"\r\n", pos, pos + MAX_LINE_LENGTH + 2)
    if eol == -1:
        if len(buffer) - pos > MAX_LINE_LENGTH + 1:
            raise SecurityError(f"HTTP line exceeds limit of {MAX_LINE_LENGTH} bytes")
        if len(buffer) - body_start > MAX_BODY_SIZE:
            raise SecurityError(f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes")
        if eof:
            raise EOFError("connection closed while reading HTTP body")
        return None, pos
    if eol + 2 - body_start > MAX_BODY_SIZE:
        raise SecurityError(f"HTTP body exceeds limit of {MAX_BODY_SIZE} bytes")
    line = bytes(buffer[pos:eol])
    _check_line(line, "response")
    return line, eol + 2
