from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from anyws.exceptions import InvalidURI
from anyws.sansio._handshake import build_request
from anyws.sansio._http11 import parse_request
from anyws.sansio._uri import WebSocketURI, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://localhost/", WebSocketURI(False, "localhost", 80, "/", "")),
        ("wss://localhost/", WebSocketURI(True, "localhost", 443, "/", "")),
        ("ws://localhost", WebSocketURI(False, "localhost", 80, "", "")),
        ("ws://localhost?q", WebSocketURI(False, "localhost", 80, "", "q")),
        ("WS://LocalHost/Path", WebSocketURI(False, "localhost", 80, "/Path", "")),
        ("wSs://example.com/", WebSocketURI(True, "example.com", 443, "/", "")),
        ("ws://localhost:8765/a/b?c=d&e", WebSocketURI(False, "localhost", 8765, "/a/b", "c=d&e")),
        ("wss://localhost:80/", WebSocketURI(True, "localhost", 80, "/", "")),
        ("ws://localhost:443/", WebSocketURI(False, "localhost", 443, "/", "")),
        ("ws://localhost:/", WebSocketURI(False, "localhost", 80, "/", "")),
        ("ws://localhost:00080/", WebSocketURI(False, "localhost", 80, "/", "")),
        ("ws://localhost:65535/", WebSocketURI(False, "localhost", 65535, "/", "")),
        ("ws://127.0.0.1:8765/", WebSocketURI(False, "127.0.0.1", 8765, "/", "")),
        ("ws://[::1]:8765/", WebSocketURI(False, "::1", 8765, "/", "")),
        ("wss://[::1]/", WebSocketURI(True, "::1", 443, "/", "")),
        ("ws://[2001:DB8::1]/", WebSocketURI(False, "2001:db8::1", 80, "/", "")),
        ("ws://[::ffff:127.0.0.1]/", WebSocketURI(False, "::ffff:127.0.0.1", 80, "/", "")),
        ("ws://[fe80::1%25eth0]:1/", WebSocketURI(False, "fe80::1%eth0", 1, "/", "")),
        ("ws://localhost/?", WebSocketURI(False, "localhost", 80, "/", "")),
        ("ws://localhost/a?b?c/d", WebSocketURI(False, "localhost", 80, "/a", "b?c/d")),
        ("ws://localhost/a:b@c", WebSocketURI(False, "localhost", 80, "/a:b@c", "")),
        ("ws://x.y_z-w~v/", WebSocketURI(False, "x.y_z-w~v", 80, "/", "")),
    ],
)
def test_parse(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "user_info"),
    [
        ("ws://user:pass@localhost/", ("user", "pass")),
        ("ws://user:@localhost/", ("user", "")),
        ("ws://:pass@localhost/", ("", "pass")),
        ("ws://us%40er:p%3As%2Fs@localhost/", ("us@er", "p:s/s")),
        ("ws://user:p@ss@localhost/", ("user", "p@ss")),
        ("ws://user:pa:ss@localhost/", ("user", "pa:ss")),
        ("ws://caf%C3%A9:%E2%98%BA@localhost/", ("caf\xe9", "\u263a")),
        ("ws://caf\xe9:\u263a@localhost/", ("caf\xe9", "\u263a")),
        ("ws://user:pass@[::1]:8080/", ("user", "pass")),
    ],
)
def test_user_info(uri: str, user_info: tuple[str, str]) -> None:
    parsed = parse_uri(uri)
    assert parsed.user_info == user_info
    assert (parsed.username, parsed.password) == user_info


def test_no_user_info() -> None:
    parsed = parse_uri("ws://localhost/")
    assert parsed.user_info is None
    assert parsed.username is None
    assert parsed.password is None


def test_user_info_without_password_built_directly() -> None:
    assert WebSocketURI(False, "h", 80, "/", "", "user").user_info == ("user", "")


@pytest.mark.parametrize(
    ("uri", "resource_name"),
    [
        ("ws://localhost", "/"),
        ("ws://localhost/", "/"),
        ("ws://localhost/path", "/path"),
        ("ws://localhost?q=1", "/?q=1"),
        ("ws://localhost/path?q=1", "/path?q=1"),
        ("ws://localhost/path?", "/path"),
    ],
)
def test_resource_name(uri: str, resource_name: str) -> None:
    assert parse_uri(uri).resource_name == resource_name


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # Internationalized host names are IDNA-encoded, paths percent-encoded in UTF-8.
        (
            "ws://b\xfccher.example/p\xe4th?q=\xfc",
            WebSocketURI(False, "xn--bcher-kva.example", 80, "/p%C3%A4th", "q=%C3%BC"),
        ),
        (
            "wss://\u4f8b\u3048.\u30c6\u30b9\u30c8:9000/",
            WebSocketURI(True, "xn--r8jz45g.xn--zckzah", 9000, "/", ""),
        ),
        ("ws://B\xdcCHER.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/", "")),
        # Characters that can't appear in a request target are percent-encoded...
        ("ws://h/a b", WebSocketURI(False, "h", 80, "/a%20b", "")),
        ('ws://h/"<>`{}', WebSocketURI(False, "h", 80, "/%22%3C%3E%60%7B%7D", "")),
        ("ws://h/?a b\x00\x7f", WebSocketURI(False, "h", 80, "/", "a%20b%00%7F")),
        ("ws://h/a\r\nX: y", WebSocketURI(False, "h", 80, "/a%0D%0AX:%20y", "")),
        ("ws://h/100%", WebSocketURI(False, "h", 80, "/100%25", "")),
        ("ws://h/%zz%4", WebSocketURI(False, "h", 80, "/%25zz%254", "")),
        # ... but valid percent-encodings and other characters are kept.
        ("ws://h/a%20b?c%2Fd", WebSocketURI(False, "h", 80, "/a%20b", "c%2Fd")),
        ("ws://h/|\\^[]!$&'()*+,;=:@", WebSocketURI(False, "h", 80, "/|\\^[]!$&'()*+,;=:@", "")),
    ],
)
def test_encoding(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://localhost/", "scheme isn't ws or wss"),
        ("https://localhost/", "scheme isn't ws or wss"),
        ("localhost", "scheme isn't ws or wss"),
        ("localhost:8765", "scheme isn't ws or wss"),
        ("", "scheme isn't ws or wss"),
        (" ws://localhost/", "scheme isn't ws or wss"),
        ("wss+unix://localhost/", "scheme isn't ws or wss"),
        ("ws:localhost", "hostname isn't provided"),
        ("ws:/localhost", "hostname isn't provided"),
        ("ws://", "hostname isn't provided"),
        ("ws:///path", "hostname isn't provided"),
        ("ws://:8765/", "hostname isn't provided"),
        ("ws://user:pass@/", "hostname isn't provided"),
        ("ws://?q", "hostname isn't provided"),
        ("ws://localhost/#", "fragment identifier is meaningless"),
        ("ws://localhost/path#frag", "fragment identifier is meaningless"),
        ("ws://localhost#frag", "fragment identifier is meaningless"),
        ("ws://user@localhost/", "username provided without password"),
        ("ws://@localhost/", "username provided without password"),
        ("ws://a%3Ab:c@localhost/", "username contains a colon"),
        ("ws://us%zzer:p@localhost/", "invalid percent-encoding in credentials"),
        ("ws://user:p%@localhost/", "invalid percent-encoding in credentials"),
        ("ws://%FF:p@localhost/", "credentials aren't valid UTF-8"),
        ("ws://\udcff:p@localhost/", "credentials aren't valid UTF-8"),
        ("ws://localhost:abc/", "invalid port: abc"),
        ("ws://localhost:0/", "invalid port: 0"),
        ("ws://localhost:65536/", "invalid port: 65536"),
        ("ws://localhost:-1/", "invalid port: -1"),
        ("ws://localhost:+80/", "invalid port: +80"),
        ("ws://localhost: 80/", "invalid port:  80"),
        ("ws://localhost:\uff18\uff10/", "invalid port: \uff18\uff10"),
        ("ws://localhost:80:80/", "invalid port: 80:80"),
        ("ws://localhost:" + "9" * 5000 + "/", "invalid port: " + "9" * 5000),
        ("ws://::1/", "hostname isn't provided"),
        ("ws://localhost:" + "0" * 5000 + "80/", None),
        ("ws://[::1/", "IPv6 address isn't closed with ]"),
        ("ws://[::1]x/", "unexpected characters after IPv6 address"),
        ("ws://[::1]:/", None),  # empty port: the default
        ("ws://[::1]:x/", "invalid port: x"),
        ("ws://[]/", "invalid IPv6 address"),
        ("ws://[zzz]/", "invalid IPv6 address"),
        ("ws://[127.0.0.1]/", "invalid IPv6 address"),
        ("ws://[v1.fe]/", "invalid IPv6 address"),
        ("ws://[fe80::1%eth0]/", "invalid IPv6 address"),
        ("ws://[fe80::1%25]/", "invalid IPv6 zone identifier"),
        ("ws://[fe80::1%25eth%200]/", "invalid IPv6 zone identifier"),
        ("ws://local host/", "invalid hostname"),
        ("ws://local%41host/", "invalid hostname"),
        ("ws://local\thost/", "invalid hostname"),
        ("ws://exa\r\nmple.com/", "invalid hostname"),
        ("ws://<script>/", "invalid hostname"),
        ("ws://a..\xf6/", "invalid internationalized hostname"),
        ("ws://" + "\xf6" * 70 + "/", "invalid internationalized hostname"),
        ("ws://\ud800/", "invalid internationalized hostname"),
        ("ws://\xf6\x00/", "invalid hostname"),
        ("ws://h/\ud800", "invalid character in path or query"),
        ("ws://h/?\udfff", "invalid character in path or query"),
    ],
)
def test_invalid(uri: str, message: str | None) -> None:
    if message is None:
        parse_uri(uri)
        return
    with pytest.raises(InvalidURI) as exc_info:
        parse_uri(uri)
    assert exc_info.value.uri == uri
    assert exc_info.value.msg == message
    assert str(exc_info.value) == f"{uri} isn't a valid URI: {message}"


def test_frozen() -> None:
    uri = parse_uri("ws://localhost/")
    with pytest.raises(AttributeError):
        uri.host = "example.com"  # type: ignore[misc]


def _check_usable(uri: WebSocketURI) -> None:
    """A parsed URI always gives a request that serializes and parses back."""
    request = build_request(uri, key="dGhlIHNhbXBsZSBub25jZQ==")
    parsed = parse_request(request.serialize())
    assert parsed is not None
    assert parsed[0] == request
    assert request.path.startswith("/")


@given(st.text(max_size=60))
@settings(max_examples=200, deadline=None)
def test_random_text(text: str) -> None:
    try:
        uri = parse_uri(text)
    except InvalidURI:
        return
    _check_usable(uri)


uri_parts = st.text(
    alphabet=st.sampled_from(list("ws:/?#@[]%.:-_~!$&'()*+,;=aZ09 \t\r\n\x00\x7f\xe9\u4f8b")),
    max_size=30,
)


@given(st.sampled_from(["ws://", "wss://", "WS://", "ws:/"]), uri_parts)
@settings(max_examples=200, deadline=None)
def test_random_uri_like_text(scheme: str, rest: str) -> None:
    try:
        uri = parse_uri(scheme + rest)
    except InvalidURI:
        return
    _check_usable(uri)


host_names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10),
    min_size=1,
    max_size=4,
).map(".".join)
paths = st.lists(st.text(alphabet="ABCXYZabcxyz0189._~!$&'()*+,;=:@-", max_size=8), max_size=4).map(
    lambda segments: "".join("/" + segment for segment in segments)
)


@given(st.booleans(), host_names, st.integers(1, 65535), paths)
@settings(max_examples=50)
def test_round_trip(secure: bool, host: str, port: int, path: str) -> None:
    scheme = "wss" if secure else "ws"
    uri = parse_uri(f"{scheme}://{host}:{port}{path}")
    assert uri == WebSocketURI(secure, host, port, path, "")


def test_encode_host() -> None:
    """The core uses the standard library's IDNA 2003 unless given an encoder; anyws gives
    IDNA 2008 (the idna package), whose result differs for ß."""
    assert parse_uri("ws://fa\xdf.de/").host == "fass.de"
    encoded: list[str] = []

    def encode(host: str) -> str:
        encoded.append(host)
        return "xn--fa-hia.de"

    assert parse_uri("ws://fa\xdf.de/", encode_host=encode).host == "xn--fa-hia.de"
    assert parse_uri("ws://ascii.example/", encode_host=encode).host == "ascii.example"
    assert encoded == ["fa\xdf.de"]


def test_encode_host_error() -> None:
    def encode(host: str) -> str:
        raise UnicodeError("no")

    with pytest.raises(InvalidURI) as exc_info:
        parse_uri("ws://fa\xdf.de/", encode_host=encode)
    assert str(exc_info.value) == (
        "ws://fa\xdf.de/ isn't a valid URI: invalid internationalized hostname"
    )
