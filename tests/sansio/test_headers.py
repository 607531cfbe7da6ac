from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from anyws.exceptions import InvalidHeaderFormat, InvalidHeaderValue
from anyws.sansio._headers import (
    Headers,
    MultipleValuesError,
    build_authorization_basic,
    build_extension,
    build_subprotocol,
    parse_authorization_basic,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)


TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
ows = st.sampled_from(["", " ", "\t", "  \t "])


class TestHeaders:
    def test_from_mapping(self) -> None:
        headers = Headers({"Host": "example.com", "Upgrade": "websocket"})
        assert headers.items() == [("Host", "example.com"), ("Upgrade", "websocket")]

    def test_from_pairs_with_repeats(self) -> None:
        headers = Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        assert headers.get_all("set-cookie") == ["a=1", "b=2"]

    def test_from_headers_is_a_copy(self) -> None:
        original = Headers(Host="a")
        copy = Headers(original)
        copy["X"] = "y"
        assert "X" not in original
        assert copy.items() == [("Host", "a"), ("X", "y")]

    def test_from_keywords_after_positional(self) -> None:
        headers = Headers({"A": "1"}, B="2")
        assert headers.items() == [("A", "1"), ("B", "2")]

    def test_getitem_is_case_insensitive(self) -> None:
        headers = Headers({"Content-Type": "text/plain"})
        assert headers["content-type"] == "text/plain"
        assert headers["CONTENT-TYPE"] == "text/plain"

    def test_getitem_missing(self) -> None:
        with pytest.raises(KeyError) as exc_info:
            Headers()["Host"]
        assert type(exc_info.value) is KeyError
        assert exc_info.value.args == ("Host",)

    def test_getitem_multiple_values(self) -> None:
        headers = Headers([("X", "1"), ("x", "2")])
        with pytest.raises(MultipleValuesError) as exc_info:
            headers["X"]
        assert isinstance(exc_info.value, KeyError)
        assert str(exc_info.value) == "multiple values for header 'X'"
        assert exc_info.value.name == "X"

    def test_get(self) -> None:
        headers = Headers({"A": "1"})
        assert headers.get("a") == "1"
        assert headers.get("b") is None
        assert headers.get("b", "default") == "default"

    def test_get_multiple_values(self) -> None:
        headers = Headers([("X", "1"), ("X", "2")])
        with pytest.raises(MultipleValuesError):
            headers.get("x", "default")

    def test_get_all(self) -> None:
        headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        assert headers.get_all("A") == ["1", "3"]
        assert headers.get_all("missing") == []
        # A copy: mutating it leaves the headers alone.
        headers.get_all("A").append("4")
        assert headers.get_all("A") == ["1", "3"]

    def test_setitem_appends(self) -> None:
        headers = Headers()
        headers["Via"] = "1"
        headers["via"] = "2"
        assert headers.items() == [("Via", "1"), ("via", "2")]
        assert len(headers) == 2

    def test_delitem_removes_every_value(self) -> None:
        headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        del headers["A"]
        assert headers.items() == [("B", "2")]
        assert "a" not in headers

    def test_delitem_missing(self) -> None:
        with pytest.raises(KeyError):
            del Headers()["A"]

    def test_contains(self) -> None:
        headers = Headers({"Upgrade": "websocket"})
        assert "upgrade" in headers
        assert "UPGRADE" in headers
        assert "Connection" not in headers
        assert 42 not in headers

    def test_iter_len_items(self) -> None:
        headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        assert list(headers) == ["a", "b"]
        assert len(headers) == 3
        assert headers.items() == [("A", "1"), ("B", "2"), ("a", "3")]
        assert list(headers.raw_items()) == headers.items()
        assert not Headers()
        assert headers

    def test_update(self) -> None:
        headers = Headers({"A": "1"})
        headers.update({"B": "2"}, [("A", "3")], Headers(C="4"), D="5")
        assert headers.items() == [("A", "1"), ("B", "2"), ("A", "3"), ("C", "4"), ("D", "5")]

    def test_copy_is_independent(self) -> None:
        headers = Headers([("A", "1")])
        copy = headers.copy()
        copy["A"] = "2"
        del copy["A"]
        copy["B"] = "3"
        assert headers.items() == [("A", "1")]
        assert headers.get_all("A") == ["1"]
        assert copy.items() == [("B", "3")]

    def test_clear(self) -> None:
        headers = Headers([("A", "1")])
        headers.clear()
        assert len(headers) == 0
        assert "A" not in headers

    def test_serialize(self) -> None:
        headers = Headers([("Host", "example.com"), ("X-Latin-1", "caf\xe9")])
        assert headers.serialize() == b"Host: example.com\r\nX-Latin-1: caf\xe9\r\n\r\n"
        assert Headers().serialize() == b"\r\n"
        assert str(headers) == "Host: example.com\r\nX-Latin-1: caf\xe9\r\n\r\n"

    def test_eq(self) -> None:
        assert Headers([("A", "1"), ("B", "2")]) == Headers([("b", "2"), ("a", "1")])
        assert Headers([("A", "1"), ("A", "2")]) != Headers([("A", "2"), ("A", "1")])
        assert Headers([("A", "1")]) != Headers([("A", "1"), ("A", "1")])
        assert Headers() != {}
        assert Headers({"A": "1"}).__eq__({"A": "1"}) is NotImplemented

    def test_unhashable(self) -> None:
        with pytest.raises(TypeError):
            hash(Headers())

    def test_repr(self) -> None:
        assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"

    @pytest.mark.parametrize(
        "name", ["", "Bad Name", "X:Y", "X\r\nY", "\xe9", "Host\n", "(comment)", '"q"']
    )
    def test_invalid_name(self, name: str) -> None:
        with pytest.raises(ValueError, match="invalid header name"):
            Headers()[name] = "value"

    @pytest.mark.parametrize(
        "value", ["a\r\nInjected: yes", "a\nb", "a\rb", "\x00", "\x7f", "\x1b[31m", "\u65e5"]
    )
    def test_invalid_value(self, value: str) -> None:
        with pytest.raises(ValueError, match="invalid value for header X"):
            Headers()["X"] = value

    def test_valid_unusual_values(self) -> None:
        headers = Headers()
        headers["X"] = ""
        headers["X"] = "tab\there"
        headers["X"] = "\x80\xff"
        assert headers.get_all("X") == ["", "tab\there", "\x80\xff"]

    def test_not_str(self) -> None:
        with pytest.raises(TypeError, match="header value must be str, not int"):
            Headers()["X"] = 1  # type: ignore[assignment]
        with pytest.raises(TypeError, match="header name must be str, not bytes"):
            Headers()[b"X"] = "1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Upgrade", ["Upgrade"]),
        ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        ("keep-alive,Upgrade", ["keep-alive", "Upgrade"]),
        (" \tUpgrade \t", ["Upgrade"]),
        (",Upgrade", ["Upgrade"]),
        (", , Upgrade,, ,close,", ["Upgrade", "close"]),
    ],
)
def test_parse_connection(header: str, expected: list[str]) -> None:
    assert parse_connection(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "invalid Connection header: expected token at 0 in "),
        (",", "invalid Connection header: expected token at 1 in ,"),
        (" , ,", "invalid Connection header: expected token at 4 in  , ,"),
        ("Up grade", "invalid Connection header: expected comma at 3 in Up grade"),
        ("Upgrade;x", "invalid Connection header: expected comma at 7 in Upgrade;x"),
        ("\u00e9", "invalid Connection header: expected token at 0 in \u00e9"),
    ],
)
def test_parse_connection_invalid(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_connection(header)
    assert str(exc_info.value) == message
    assert exc_info.value.name == "Connection"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("websocket", ["websocket"]),
        ("WebSocket", ["WebSocket"]),
        ("h2c/1.1, websocket", ["h2c/1.1", "websocket"]),
        ("HTTP/2.0,SHTTP/1.3, IRC/6.9, RTA/x11", ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"]),
    ],
)
def test_parse_upgrade(header: str, expected: list[str]) -> None:
    assert parse_upgrade(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("websocket/", "invalid Upgrade header: expected token at 10 in websocket/"),
        ("/1.1", "invalid Upgrade header: expected token at 0 in /1.1"),
        ("a/b/c", "invalid Upgrade header: expected comma at 3 in a/b/c"),
        ("web socket", "invalid Upgrade header: expected comma at 4 in web socket"),
    ],
)
def test_parse_upgrade_invalid(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_upgrade(header)
    assert str(exc_info.value) == message


def test_parse_subprotocol() -> None:
    assert parse_subprotocol("chat") == ["chat"]
    assert parse_subprotocol("chat, superchat,,v2.json") == ["chat", "superchat", "v2.json"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "invalid Sec-WebSocket-Protocol header: expected token at 0 in "),
        ("a b", "invalid Sec-WebSocket-Protocol header: expected comma at 2 in a b"),
        ('"chat"', 'invalid Sec-WebSocket-Protocol header: expected token at 0 in "chat"'),
    ],
)
def test_parse_subprotocol_invalid(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_subprotocol(header)
    assert str(exc_info.value) == message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("foo", [("foo", [])]),
        ("foo, bar", [("foo", []), ("bar", [])]),
        (
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
            [
                (
                    "permessage-deflate",
                    [("client_max_window_bits", None), ("server_max_window_bits", "10")],
                )
            ],
        ),
        ("foo;a=1;b", [("foo", [("a", "1"), ("b", None)])]),
        ("foo ; a = 1 ;\tb\t", [("foo", [("a", "1"), ("b", None)])]),
        ('foo; a="1"', [("foo", [("a", "1")])]),
        ('foo; a="\\1\\0"', [("foo", [("a", "10")])]),
        ('foo; a=""; b', None),  # empty after unquoting: not a token
        (
            "mux; max-channels=4; flow-control, deflate-stream",
            [("mux", [("max-channels", "4"), ("flow-control", None)]), ("deflate-stream", [])],
        ),
        (",, foo,", [("foo", [])]),
    ],
)
def test_parse_extension(header: str, expected: list[object] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidHeaderFormat):
            parse_extension(header)
    else:
        assert parse_extension(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "expected token at 0 in "),
        ("foo;", "expected token at 4 in foo;"),
        ("foo; =1", "expected token at 5 in foo; =1"),
        ("foo; a=", "expected token at 7 in foo; a="),
        ("foo; a=,", "expected token at 7 in foo; a=,"),
        ('foo; a="1', 'invalid quoted string at 7 in foo; a="1'),
        ('foo; a="1 2"', 'expected token after unquoting at 7 in foo; a="1 2"'),
        ('foo; a="\\""', 'expected token after unquoting at 7 in foo; a="\\""'),
        ('foo; a="\x01"', 'invalid quoted string at 7 in foo; a="\x01"'),
        ("foo; a=1 2", "expected comma at 9 in foo; a=1 2"),
        ("foo bar", "expected comma at 4 in foo bar"),
    ],
)
def test_parse_extension_invalid(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_extension(header)
    assert str(exc_info.value) == f"invalid Sec-WebSocket-Extensions header: {message}"


def test_build_extension() -> None:
    assert build_extension([]) == ""
    assert build_extension([("foo", [])]) == "foo"
    assert build_extension([("foo", [("a", "1"), ("b", None)]), ("bar", [])]) == "foo; a=1; b, bar"


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([("foo bar", [])], "invalid extension name: 'foo bar'"),
        ([("foo", [("a b", None)])], "invalid parameter name for extension foo: 'a b'"),
        ([("foo", [("a", "1 2")])], "invalid value for parameter a: '1 2'"),
        ([("foo", [("a", "")])], "invalid value for parameter a: ''"),
    ],
)
def test_build_extension_invalid(
    extensions: list[tuple[str, list[tuple[str, str | None]]]], message: str
) -> None:
    with pytest.raises(ValueError) as exc_info:
        build_extension(extensions)
    assert str(exc_info.value) == message


def test_build_subprotocol() -> None:
    assert build_subprotocol(["chat"]) == "chat"
    assert build_subprotocol(["chat", "superchat"]) == "chat, superchat"
    with pytest.raises(ValueError, match="invalid subprotocol: 'a b'"):
        build_subprotocol(["a b"])
    with pytest.raises(ValueError, match="invalid subprotocol: ''"):
        build_subprotocol([""])


extension_lists = st.lists(
    st.tuples(tokens, st.lists(st.tuples(tokens, st.none() | tokens), max_size=3)),
    min_size=1,
    max_size=4,
)


@given(extension_lists)
@settings(max_examples=50)
def test_extension_round_trip(extensions: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
    assert parse_extension(build_extension(extensions)) == extensions


@given(st.lists(tokens, min_size=1, max_size=5))
@settings(max_examples=50)
def test_subprotocol_round_trip(subprotocols: list[str]) -> None:
    assert parse_subprotocol(build_subprotocol(subprotocols)) == subprotocols


@given(st.lists(st.tuples(ows, tokens, ows), min_size=1, max_size=5), ows, ows)
@settings(max_examples=50)
def test_list_tolerates_whitespace_and_empty_elements(
    items: list[tuple[str, str, str]], before: str, after: str
) -> None:
    header = before + ",".join(f"{left}{token}{right}" for left, token, right in items) + after
    header = header.replace(",", ", ,", 1)  # an empty element
    assert parse_connection(header) == [token for _, token, _ in items]


@given(st.text(max_size=40))
def test_parsers_only_raise_invalid_header_format(header: str) -> None:
    for parse in (parse_connection, parse_upgrade, parse_subprotocol, parse_extension):
        try:
            parse(header)
        except InvalidHeaderFormat:
            pass


@given(st.text(alphabet=TCHARS + ' ,;="\\\t/', max_size=40))
def test_parsers_only_raise_invalid_header_format_on_likely_input(header: str) -> None:
    for parse in (parse_connection, parse_upgrade, parse_subprotocol, parse_extension):
        try:
            parse(header)
        except InvalidHeaderFormat:
            pass


class TestAuthorizationBasic:
    def test_rfc_7617_example(self) -> None:
        header = build_authorization_basic("Aladdin", "open sesame")
        assert header == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        assert parse_authorization_basic(header) == ("Aladdin", "open sesame")

    def test_utf8_and_colon_in_password(self) -> None:
        header = build_authorization_basic("t\xe9st", "p:w:\u263a")
        assert parse_authorization_basic(header) == ("t\xe9st", "p:w:\u263a")

    def test_empty_credentials(self) -> None:
        assert parse_authorization_basic(build_authorization_basic("", "")) == ("", "")

    def test_scheme_is_case_insensitive_and_spaces_are_tolerated(self) -> None:
        assert parse_authorization_basic("bAsIc   dXNlcjpwYXNz") == ("user", "pass")

    def test_colon_in_username(self) -> None:
        with pytest.raises(ValueError, match="username may not contain a colon"):
            build_authorization_basic("a:b", "c")

    @given(st.text().filter(lambda s: ":" not in s), st.text())
    def test_round_trip(self, username: str, password: str) -> None:
        try:
            username.encode()
            password.encode()
        except UnicodeEncodeError:
            return  # lone surrogates can't be sent
        header = build_authorization_basic(username, password)
        assert parse_authorization_basic(header) == (username, password)

    @pytest.mark.parametrize(
        ("header", "exc_type", "message"),
        [
            ("Bearer abc", InvalidHeaderValue, "unsupported scheme: Bearer"),
            ("", InvalidHeaderFormat, "expected token at 0 in "),
            ("Basic", InvalidHeaderFormat, "expected space after scheme at 5 in Basic"),
            (
                "Basic\tdXNlcjpwYXNz",
                InvalidHeaderFormat,
                "expected space after scheme at 5 in Basic\tdXNlcjpwYXNz",
            ),
            ("Basic ", InvalidHeaderFormat, "expected token68 at 6 in Basic "),
            ("Basic !!!", InvalidHeaderFormat, "expected token68 at 6 in Basic !!!"),
            (
                "Basic dXNlcjpwYXNz extra",
                InvalidHeaderFormat,
                "expected end of header at 18 in Basic dXNlcjpwYXNz extra",
            ),
            ("Basic dXNlcjpwYXN", InvalidHeaderValue, "expected base64-encoded credentials"),
            ("Basic =", InvalidHeaderFormat, "expected token68 at 6 in Basic ="),
            ("Basic -_-_", InvalidHeaderValue, "expected base64-encoded credentials"),
            ("Basic /w==", InvalidHeaderValue, "expected base64-encoded credentials"),
            ("Basic dXNlcg==", InvalidHeaderValue, "expected username:password credentials"),
        ],
    )
    def test_invalid(self, header: str, exc_type: type[InvalidHeaderFormat], message: str) -> None:
        with pytest.raises(exc_type) as exc_info:
            parse_authorization_basic(header)
        assert type(exc_info.value) is exc_type
        assert str(exc_info.value) == f"invalid Authorization header: {message}"

    @given(st.text(max_size=40))
    def test_random_input(self, header: str) -> None:
        try:
            parse_authorization_basic(header)
        except (InvalidHeaderFormat, InvalidHeaderValue):
            pass


def test_fields_are_stored_once() -> None:
    """A connection keeps its handshake's headers: no index beside the fields."""
    import tracemalloc

    pairs = [(f"X-Header-{i}", f"value {i}") for i in range(12)]
    Headers(pairs)  # warm-up: caches, interned names
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        headers = Headers(pairs)
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The list of 12 (name, value) tuples: under 600 bytes. An index by lowercased
    # name (a dict and 12 lists) nearly triples it (over 1,500 bytes).
    assert size < 1000, size
    assert headers["x-header-3"] == "value 3"
    assert list(headers)[:2] == ["x-header-0", "x-header-1"]
