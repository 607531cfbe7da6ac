"""``ws://`` and ``wss://`` URIs (RFC 6455, section 3).

Strategy: split the URI by hand along RFC 3986, section 3, rather than with
`urllib.parse`, which silently drops tabs and newlines, strips leading control
characters and parses ports differently from one Python version to the next.
What comes out is safe to put on the wire: the host is a valid reg-name (IDNA-
encoded if it was Unicode, by the encoder the caller passes: see `parse_uri`) or an
IPv6 address, and the path and query are visible US-ASCII, characters that may not
appear in a request target being percent-encoded as browsers do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from collections.abc import Callable

from ..exceptions import InvalidURI


__all__ = ["WebSocketURI", "parse_uri"]

# RFC 3986, section 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), minus
# pct-encoded, which no DNS name needs.
_REG_NAME_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
# RFC 6874: ZoneID = 1*( unreserved / pct-encoded ), minus pct-encoded.
_ZONE_ID_RE = re.compile(r"[A-Za-z0-9\-._~]+")
_PORT_RE = re.compile(r"[0-9]+")
# What to percent-encode in a path or a query: C0 controls, space, DEL, non-ASCII,
# the characters of the WHATWG URL Standard's path percent-encode set ('"', '<',
# '>', '`', '{', '}'), and a "%" that doesn't start a percent-encoding.
_UNSAFE_RE = re.compile(r"[^\x21-\x7e]|[\"<>`{}]|%(?![0-9A-Fa-f]{2})")
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclasses.dataclass(frozen=True, slots=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI. Not for subclassing.

    Attributes:
        secure: ``True`` for ``wss://``.
        host: The host name (lowercased, IDNA-encoded) or IP address; an IPv6
            address has no brackets, and its zone, if any, follows a ``%``.
        port: The port, 80 or 443 by default.
        path: The path, percent-encoded; may be empty.
        query: The query, percent-encoded, without the ``?``; may be empty.
        username: The user name for HTTP Basic authentication, percent-decoded.
        password: The password for HTTP Basic authentication, percent-decoded.
    """

    secure: bool
    host: str
    port: int
    path: str
    query: str
    username: str | None = None
    password: str | None = None

    @property
    def resource_name(self) -> str:
        """The request target; the path, or ``/``, then ``?`` and the query, if any."""
        resource_name = self.path or "/"
        if self.query:
            resource_name += "?" + self.query
        return resource_name

    @property
    def user_info(self) -> tuple[str, str] | None:
        """``(username, password)``, or ``None`` without credentials."""
        if self.username is None:
            return None
        return self.username, self.password or ""


def parse_uri(uri: str, *, encode_host: Callable[[str], str] | None = None) -> WebSocketURI:
    """Parse and validate a WebSocket URI.

    Args:
        uri: The URI; its host may be Unicode (an IRI).
        encode_host: Converts a non-ASCII host name to ASCII, raising
            `UnicodeError` when it can't. By default, the standard library's
            ``"idna"`` codec, which is IDNA 2003: ``faß.de`` becomes ``fass.de``.
            anyws' client passes IDNA 2008 with UTS #46 (the ``idna`` package's
            ``idna.encode(host, uts46=True)``, as browsers and anyio do), which
            keeps ``xn--fa-hia.de``; this core uses the standard library only.

    Raises:
        InvalidURI: ``uri`` isn't a valid ``ws://`` or ``wss://`` URI.
    """
    # RFC 3986, section 3: scheme ":" "//" authority path-abempty [ "?" query ]
    # [ "#" fragment ]; scheme names are case-insensitive.
    scheme, colon, rest = uri.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    secure = scheme == "wss"
    if not rest.startswith("//"):
        raise InvalidURI(uri, "hostname isn't provided")
    rest, hash_sign, _ = rest[2:].partition("#")
    if hash_sign:
        # RFC 6455, section 3: "Fragment identifiers are meaningless in the context
        # of WebSocket URIs and MUST NOT be used on these URIs."
        raise InvalidURI(uri, "fragment identifier is meaningless")
    authority_end = len(rest)
    for delimiter in "/?":
        index = rest.find(delimiter)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, rest = rest[:authority_end], rest[authority_end:]
    path, _, query = rest.partition("?")

    # authority = [ userinfo "@" ] host [ ":" port ]; an unencoded "@" in the
    # password is tolerated by splitting at the last one.
    userinfo, at_sign, host_port = authority.rpartition("@")
    username = password = None
    if at_sign:
        username, colon, password = userinfo.partition(":")
        if not colon:
            raise InvalidURI(uri, "username provided without password")
        username = _decode_userinfo(uri, username)
        password = _decode_userinfo(uri, password)
        if ":" in username:
            # RFC 7617, section 2: a user-id containing a colon is invalid.
            raise InvalidURI(uri, "username contains a colon")

    if host_port.startswith("["):
        literal, bracket, port_part = host_port[1:].partition("]")
        if not bracket:
            raise InvalidURI(uri, "IPv6 address isn't closed with ]")
        host = _parse_ipv6(uri, literal)
        if port_part and not port_part.startswith(":"):
            raise InvalidURI(uri, "unexpected characters after IPv6 address")
        port_text = port_part[1:]
    else:
        host, _, port_text = host_port.partition(":")
        if not host:
            raise InvalidURI(uri, "hostname isn't provided")
        host = _parse_reg_name(uri, host, encode_host or _idna_2003)

    # RFC 3986, section 3.2.3: an empty port is the default one.
    if not port_text:
        port = 443 if secure else 80
    else:
        # Strip leading zeros before int(): long strings of digits are slow to convert.
        digits = port_text.lstrip("0")
        if _PORT_RE.fullmatch(port_text) is None or len(digits) > 5:
            raise InvalidURI(uri, f"invalid port: {port_text}")
        port = int(digits or "0")
        if not 0 < port < 65536:
            raise InvalidURI(uri, f"invalid port: {port_text}")

    path = _encode(uri, path)
    query = _encode(uri, query)
    return WebSocketURI(secure, host, port, path, query, username, password)


def _idna_2003(host: str) -> str:
    return host.encode("idna").decode("ascii")


def _parse_reg_name(uri: str, host: str, encode_host: Callable[[str], str]) -> str:
    if not host.isascii():
        # An IRI: convert the host to a URI host, as websockets does.
        try:
            host = encode_host(host)
        except UnicodeError:
            raise InvalidURI(uri, "invalid internationalized hostname") from None
    if _REG_NAME_RE.fullmatch(host) is None:
        raise InvalidURI(uri, "invalid hostname")
    return host.lower()


def _parse_ipv6(uri: str, literal: str) -> str:
    # RFC 6874: IPv6addrz = IPv6address "%25" ZoneID.
    address, percent, zone = literal.partition("%25")
    if percent and _ZONE_ID_RE.fullmatch(zone) is None:
        raise InvalidURI(uri, "invalid IPv6 zone identifier")
    if "%" in address:
        raise InvalidURI(uri, "invalid IPv6 address")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise InvalidURI(uri, "invalid IPv6 address") from None
    address = address.lower()
    return f"{address}%{zone}" if percent else address


def _decode_userinfo(uri: str, text: str) -> str:
    if _BAD_PERCENT_RE.search(text) is not None:
        raise InvalidURI(uri, "invalid percent-encoding in credentials")
    try:
        decoded = urllib.parse.unquote(text, errors="strict")
        # Basic authentication sends credentials in UTF-8: no lone surrogates.
        decoded.encode()
    except UnicodeError:
        raise InvalidURI(uri, "credentials aren't valid UTF-8") from None
    return decoded


def _encode(uri: str, text: str) -> str:
    try:
        return _UNSAFE_RE.sub(lambda match: urllib.parse.quote(match.group(), safe=""), text)
    except UnicodeError:
        raise InvalidURI(uri, "invalid character in path or query") from None
