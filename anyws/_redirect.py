"""Following HTTP redirects during the opening handshake: the pure part.

`connect` follows redirects hop by hop; this module decides, from the response
of one hop, where the next one goes and which credentials it may carry. It does
no I/O, so every rule is unit-tested on its own.

The rules, after RFC 9110, section 15.4, and the Fetch Standard (HTTP-redirect
fetch), which websockets follows too:

- 301, 302, 303, 307 and 308 with a single ``Location`` header are redirects.
  A WebSocket handshake is a ``GET`` without a body, so the codes that change
  the method (301, 302 and 303 turn ``POST`` into ``GET``) are followed like
  the others.
- A relative ``Location`` is resolved against the URI of the request; a
  fragment, meaningless in a WebSocket URI, is dropped.
- ``wss://`` never redirects to ``ws://``: that would send the rest of the
  handshake, and everything after it, in clear text.
- When the origin (scheme, host, port) changes, credentials stay behind: the
  ``Authorization`` built from the URI's user info, and ``Authorization``,
  ``Cookie`` and ``Proxy-Authorization`` in the additional headers. A ``Host``
  in the additional headers named the first origin's virtual host, so it stays
  behind too. Once dropped, they stay dropped for the rest of the chain.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from ._idna import idna_encode
from .exceptions import InvalidStatus, InvalidURI, SecurityError
from .sansio import Headers, WebSocketURI, parse_uri


__all__ = ["REDIRECT_STATUSES", "format_uri", "redirect_target", "same_origin", "strip_credentials"]

#: The statuses followed as redirects (RFC 9110, section 15.4).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Request headers that carry credentials or name the origin; dropped across origins.
CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization", "host"})


def same_origin(a: WebSocketURI, b: WebSocketURI) -> bool:
    """Whether two URIs share an origin: scheme, host and port."""
    return (a.secure, a.host, a.port) == (b.secure, b.host, b.port)


def format_uri(uri: WebSocketURI) -> str:
    """Return ``uri`` as a string, without its user info (which isn't for logs)."""
    host = uri.host
    if ":" in host:  # an IPv6 address; RFC 6874 encodes the zone's "%" as "%25"
        address, percent, zone = host.partition("%")
        host = f"[{address}%25{zone}]" if percent else f"[{address}]"
    scheme = "wss" if uri.secure else "ws"
    return f"{scheme}://{host}:{uri.port}{uri.resource_name}"


def redirect_target(uri: WebSocketURI, exc: InvalidStatus) -> WebSocketURI | None:
    """Return where the response in ``exc`` redirects the request for ``uri`` to.

    Returns ``None`` when the response isn't a redirect. The target keeps the
    credentials of ``uri`` if it has the same origin and names none itself.

    Raises:
        InvalidURI: ``Location`` isn't a valid WebSocket URI once resolved
            (``http://`` for example), chained to ``exc``.
        SecurityError: The redirect goes from ``wss://`` to ``ws://``, chained
            to ``exc``.
    """
    response = exc.response
    if response.status_code not in REDIRECT_STATUSES:
        return None
    locations = response.headers.get_all("Location")
    if len(locations) != 1:
        return None
    location = urllib.parse.urljoin(format_uri(uri), locations[0].strip())
    # A fragment is meaningless in a WebSocket URI (RFC 6455, section 3) but
    # legitimate in a Location (RFC 9110, section 10.2.2): drop it.
    location = urllib.parse.urldefrag(location).url
    try:
        target = parse_uri(location, encode_host=idna_encode)
    except InvalidURI as uri_exc:
        raise uri_exc from exc
    if uri.secure and not target.secure:
        raise SecurityError(
            f"cannot follow redirect to non-secure URI {format_uri(target)}"
        ) from exc
    if target.username is None and same_origin(uri, target):
        target = dataclasses.replace(target, username=uri.username, password=uri.password)
    return target


def strip_credentials(headers: Headers | None) -> Headers | None:
    """Return ``headers`` without the fields that mustn't cross origins."""
    if headers is None:
        return None
    return Headers(
        (name, value)
        for name, value in headers.raw_items()
        if name.lower() not in CROSS_ORIGIN_DROPPED
    )
