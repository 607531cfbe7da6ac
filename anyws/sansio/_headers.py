"""HTTP header fields: the `Headers` multimap and the RFC 7230 list grammars.

`Headers` keeps every field in arrival order with its original case, and looks names
up case-insensitively, like websockets' ``Headers``. Values are text decoded from
ISO-8859-1 (RFC 7230, section 3.2.4: "Historically, HTTP has allowed field content
with text in the ISO-8859-1 charset"), so every byte of a received field survives a
round trip, and a value must be encodable in ISO-8859-1 to be sent.

The parsers follow the list rule of RFC 7230, section 7
(https://datatracker.ietf.org/doc/html/rfc7230#section-7)::

    1#element => *( "," OWS ) element *( OWS "," [ OWS element ] )

that is: optional whitespace around commas and empty list elements are tolerated,
and at least one element is required. They raise `InvalidHeaderFormat` with the
position of the first character they could not parse.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias, TypeVar

from ..exceptions import InvalidHeaderFormat, InvalidHeaderValue
from .extensions._base import ExtensionParameter


__all__ = [
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "build_authorization_basic",
    "build_extension",
    "build_subprotocol",
    "parse_authorization_basic",
    "parse_connection",
    "parse_extension",
    "parse_subprotocol",
    "parse_upgrade",
]

_T = TypeVar("_T")

# RFC 7230, section 3.2.6: token = 1*tchar.
_TOKEN_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")

# RFC 7230, section 3.2: field-value = *( field-content / obs-fold ), without obs-fold:
# visible characters, obs-text (%x80-FF), spaces and tabs; no other control character.
_FIELD_VALUE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

# RFC 7230, section 3.2.3: OWS = *( SP / HTAB ).
_OWS_RE = re.compile(r"[\t ]*")

# RFC 7230, section 3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE.
_QUOTED_STRING_RE = re.compile(r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"')
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)

# RFC 7235, section 2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class MultipleValuesError(KeyError):
    """A header that should appear once appears several times.

    A subclass of `KeyError`, so that ``except KeyError`` handles a missing header and a
    repeated one alike.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"multiple values for header {self.name!r}"


class Headers:
    """HTTP header fields: a case-insensitive multimap that keeps order and case.

    Build it from a mapping, from another `Headers` or from an iterable of
    ``(name, value)`` pairs, and from keyword arguments::

        headers = Headers({"Host": "example.com"}, Upgrade="websocket")

    Unlike a `dict`:

    - ``headers[name] = value`` *appends* a field, as websockets does; delete the name
      first to replace it;
    - ``headers[name]`` raises `KeyError` if the name is missing and
      `MultipleValuesError` if it appears several times; so does `get`, which only
      returns ``default`` for a missing name; `get_all` returns every value;
    - iterating gives each distinct name once, lowercased, while ``len()`` counts the
      fields (pairs), and `items` gives the fields as they were added.

    Names must be RFC 7230 tokens and values may not contain control characters
    other than horizontal tab (this keeps `serialize` safe from header injection);
    anything else raises `ValueError`, or `TypeError` for something that isn't `str`.
    """

    # The fields are stored once, in order: a connection keeps its handshake's
    # headers, and an index by name would double their memory for the dozen
    # lookups of a handshake, which a scan of a dozen fields serves as fast.
    __slots__ = ("_list",)

    def __init__(self, headers: HeadersLike | None = None, /, **kwargs: str) -> None:
        #: Fields in order, with their original case.
        self._list: list[tuple[str, str]] = []
        if headers is not None:
            self.update(headers)
        if kwargs:
            self.update(kwargs)

    # Reading

    def _values(self, name: str) -> list[str]:
        """The values of ``name``, in order."""
        key = name.lower()
        size = len(key)
        return [v for k, v in self._list if len(k) == size and k.lower() == key]

    def __getitem__(self, name: str) -> str:
        values = self._values(name)
        if not values:
            raise KeyError(name)
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the single value of ``name``, or ``default`` if it's missing.

        Raises:
            MultipleValuesError: ``name`` appears several times.
        """
        values = self._values(name)
        if not values:
            return default
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name``, in order; an empty list if it's missing."""
        return self._values(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._values(name))

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([name.lower() for name, _ in self._list]))

    def _by_name(self) -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = {}
        for name, value in self._list:
            by_name.setdefault(name.lower(), []).append(value)
        return by_name

    def __len__(self) -> int:
        return len(self._list)

    def items(self) -> list[tuple[str, str]]:
        """Return the fields as ``(name, value)`` pairs, in order, with their original case."""
        return list(self._list)

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Iterate over the fields like `items` (websockets' name)."""
        return iter(self._list)

    # Writing

    def __setitem__(self, name: str, value: str) -> None:
        _check_field(name, value)
        self._list.append((name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [(k, v) for k, v in self._list if k.lower() != key]
        if len(kept) == len(self._list):
            raise KeyError(name)
        self._list = kept

    def update(self, *args: HeadersLike, **kwargs: str) -> None:
        """Append the fields of each argument, then the keyword arguments, in order."""
        for headers in args:
            pairs: Iterable[tuple[str, str]]
            if isinstance(headers, Headers):
                pairs = headers._list
            elif isinstance(headers, Mapping):
                pairs = headers.items()
            else:
                pairs = headers
            for name, value in pairs:
                self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    def clear(self) -> None:
        """Remove every field."""
        self._list.clear()

    def copy(self) -> Headers:
        """Return an independent copy."""
        copy = Headers()
        copy._list = list(self._list)
        return copy

    # Output

    def serialize(self) -> bytes:
        """Return the fields as ``Name: value`` lines followed by the empty line."""
        text = "".join([f"{name}: {value}\r\n" for name, value in self._list])
        return text.encode("latin-1") + b"\r\n"

    def __eq__(self, other: object) -> bool:
        # Case-insensitive names; the order matters among the values of one name only.
        if not isinstance(other, Headers):
            return NotImplemented
        return self._by_name() == other._by_name()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"

    def __str__(self) -> str:
        return self.serialize().decode("latin-1")


#: What `Headers` and the handshake builders accept as header fields.
HeadersLike: TypeAlias = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


def _check_field(name: str, value: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"header name must be str, not {type(name).__name__}")
    if not isinstance(value, str):
        raise TypeError(f"header value must be str, not {type(value).__name__}")
    if _TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"invalid header name: {name!r}")
    if _FIELD_VALUE_RE.fullmatch(value) is None:
        raise ValueError(f"invalid value for header {name}: {value!r}")


def is_token(value: str) -> bool:
    """Tell whether ``value`` is an RFC 7230 token."""
    return _TOKEN_RE.fullmatch(value) is not None


# Parsing. Each parser takes the header value, a position and the header name (for
# errors), and returns what it parsed with the position just after it.


def _skip_ows(header: str, pos: int) -> int:
    match = _OWS_RE.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _parse_token(header: str, pos: int, name: str) -> tuple[str, int]:
    match = _TOKEN_RE.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token", header, pos)
    return match.group(), match.end()


def _parse_list(
    parse_item: Callable[[str, int, str], tuple[_T, int]],
    header: str,
    name: str,
) -> list[_T]:
    # Leading empty elements.
    pos = _skip_ows(header, 0)
    while pos < len(header) and header[pos] == ",":
        pos = _skip_ows(header, pos + 1)
    items: list[_T] = []
    while True:
        item, pos = parse_item(header, pos, name)
        items.append(item)
        pos = _skip_ows(header, pos)
        if pos == len(header):
            return items
        if header[pos] != ",":
            raise InvalidHeaderFormat(name, "expected comma", header, pos)
        # This comma and any empty elements after it.
        while pos < len(header) and header[pos] == ",":
            pos = _skip_ows(header, pos + 1)
        if pos == len(header):
            return items


def _parse_protocol(header: str, pos: int, name: str) -> tuple[str, int]:
    # RFC 7230, section 6.7: protocol = protocol-name ["/" protocol-version], both tokens.
    protocol, pos = _parse_token(header, pos, name)
    if pos < len(header) and header[pos] == "/":
        version, pos = _parse_token(header, pos + 1, name)
        protocol = f"{protocol}/{version}"
    return protocol, pos


def _parse_extension_item(
    header: str, pos: int, name: str
) -> tuple[tuple[str, list[ExtensionParameter]], int]:
    # RFC 6455, section 9.1:
    #   extension = extension-token *( ";" extension-param )
    #   extension-param = token [ "=" (token | quoted-string) ]
    #   ; When using the quoted-string syntax variant, the value after quoted-string
    #   ; unescaping MUST conform to the 'token' ABNF.
    # with optional whitespace around ";" and "=" (RFC 6455 keeps RFC 2616's implied *LWS).
    extension, pos = _parse_token(header, pos, name)
    params: list[ExtensionParameter] = []
    while True:
        pos = _skip_ows(header, pos)
        if pos == len(header) or header[pos] != ";":
            return (extension, params), pos
        pos = _skip_ows(header, pos + 1)
        param, pos = _parse_token(header, pos, name)
        value: str | None = None
        after = _skip_ows(header, pos)
        if after < len(header) and header[after] == "=":
            pos = _skip_ows(header, after + 1)
            if pos < len(header) and header[pos] == '"':
                match = _QUOTED_STRING_RE.match(header, pos)
                if match is None:
                    raise InvalidHeaderFormat(name, "invalid quoted string", header, pos)
                value = _QUOTED_PAIR_RE.sub(r"\1", match.group()[1:-1])
                if not is_token(value):
                    raise InvalidHeaderFormat(name, "expected token after unquoting", header, pos)
                pos = match.end()
            else:
                value, pos = _parse_token(header, pos, name)
        params.append((param, value))


def parse_connection(header: str) -> list[str]:
    """Parse a ``Connection`` header: a list of connection options (tokens).

    Compare the options case-insensitively.

    Raises:
        InvalidHeaderFormat: The value doesn't follow ``1#token``.
    """
    return _parse_list(_parse_token, header, "Connection")


def parse_upgrade(header: str) -> list[str]:
    """Parse an ``Upgrade`` header: a list of protocols such as ``websocket`` or ``h2c/1.1``.

    Raises:
        InvalidHeaderFormat: The value doesn't follow ``1#protocol``.
    """
    return _parse_list(_parse_protocol, header, "Upgrade")


def parse_extension(header: str) -> list[tuple[str, list[ExtensionParameter]]]:
    """Parse a ``Sec-WebSocket-Extensions`` header.

    Return a list of ``(name, [(param, value or None), ...])``, in order. Quoted
    parameter values are unquoted.

    Raises:
        InvalidHeaderFormat: The value doesn't follow RFC 6455, section 9.1.
    """
    return _parse_list(_parse_extension_item, header, "Sec-WebSocket-Extensions")


def parse_subprotocol(header: str) -> list[str]:
    """Parse a ``Sec-WebSocket-Protocol`` header: a list of tokens.

    Raises:
        InvalidHeaderFormat: The value doesn't follow ``1#token``.
    """
    return _parse_list(_parse_token, header, "Sec-WebSocket-Protocol")


def build_extension(extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]]) -> str:
    """Build a ``Sec-WebSocket-Extensions`` header; the inverse of `parse_extension`.

    Raises:
        ValueError: A name or a value isn't a token.
    """
    items = []
    for name, params in extensions:
        if not is_token(name):
            raise ValueError(f"invalid extension name: {name!r}")
        parts = [name]
        for param, value in params:
            if not is_token(param):
                raise ValueError(f"invalid parameter name for extension {name}: {param!r}")
            if value is None:
                parts.append(param)
            elif is_token(value):
                parts.append(f"{param}={value}")
            else:
                raise ValueError(f"invalid value for parameter {param}: {value!r}")
        items.append("; ".join(parts))
    return ", ".join(items)


def build_subprotocol(subprotocols: Sequence[str]) -> str:
    """Build a ``Sec-WebSocket-Protocol`` header; the inverse of `parse_subprotocol`.

    Raises:
        ValueError: A subprotocol isn't a token.
    """
    for subprotocol in subprotocols:
        if not is_token(subprotocol):
            raise ValueError(f"invalid subprotocol: {subprotocol!r}")
    return ", ".join(subprotocols)


def build_authorization_basic(username: str, password: str) -> str:
    """Build an ``Authorization`` header for HTTP Basic authentication (RFC 7617).

    The credentials are encoded in UTF-8.

    Raises:
        ValueError: ``username`` contains a colon (RFC 7617, section 2).
    """
    if ":" in username:
        raise ValueError("username may not contain a colon")
    credentials = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def parse_authorization_basic(header: str) -> tuple[str, str]:
    """Parse an ``Authorization`` header for HTTP Basic authentication (RFC 7617).

    Return ``(username, password)``, decoded from UTF-8.

    Raises:
        InvalidHeaderFormat: The value isn't ``scheme SP token68``.
        InvalidHeaderValue: The scheme isn't ``Basic`` or the credentials are invalid.
    """
    # RFC 7235, section 2.1: credentials = auth-scheme [ 1*SP ( token68 / ... ) ]
    name = "Authorization"
    scheme, pos = _parse_token(header, 0, name)
    if scheme.lower() != "basic":
        raise InvalidHeaderValue(name, f"unsupported scheme: {scheme}")
    if pos == len(header) or header[pos] != " ":
        raise InvalidHeaderFormat(name, "expected space after scheme", header, pos)
    while pos < len(header) and header[pos] == " ":
        pos += 1
    match = _TOKEN68_RE.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token68", header, pos)
    if match.end() != len(header):
        raise InvalidHeaderFormat(name, "expected end of header", header, match.end())
    try:
        user_pass = base64.b64decode(match.group(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidHeaderValue(name, "expected base64-encoded credentials") from None
    username, colon, password = user_pass.partition(":")
    if not colon:
        raise InvalidHeaderValue(name, "expected username:password credentials")
    return username, password
