"""The core's surface for anyws' own I/O layer: what it uses beyond the public API.

Every name that a module outside ``anyws/sansio/`` imports from the core is either in
`anyws.sansio.__all__` (the integrator API) or here; ``tests/test_layering.py``
checks it. These names are internal to anyws: integrators shouldn't rely on them.
"""

from __future__ import annotations

from ._frames import is_valid_close_code as is_valid_close_code, serialize_frame as serialize_frame
from ._handshake import SERVER as SERVER, USER_AGENT as USER_AGENT, build_host as build_host
from ._headers import (
    HeadersLike as HeadersLike,
    build_authorization_basic as build_authorization_basic,
    parse_authorization_basic as parse_authorization_basic,
)
from ._http11 import parse_response as parse_response
from ._protocol import LoggerLike as LoggerLike


__all__ = [
    "SERVER",
    "USER_AGENT",
    "HeadersLike",
    "LoggerLike",
    "build_authorization_basic",
    "build_host",
    "is_valid_close_code",
    "parse_authorization_basic",
    "parse_response",
    "serialize_frame",
]
