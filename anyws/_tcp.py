"""TCP connections for the client: `connect_tcp`, with the errors the socket raised.

anyio's `~anyio.connect_tcp` tries every address of the host (happy eyeballs) and,
when none answers, raises a plain ``OSError("All connection attempts failed")``
over the attempts' errors: ``except ConnectionRefusedError:`` wouldn't match. As
asyncio's ``loop.create_connection`` does (and so websockets), `connect_tcp` raises
the error of the attempts instead, when they all failed the same way (the same
type and errno: refused, unreachable...), and otherwise an `OSError` that lists
them, with the first as its ``__cause__``.
"""

from __future__ import annotations

import sys

import anyio
import anyio.abc


if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]


__all__ = ["connect_error", "connect_tcp"]


async def connect_tcp(host: str, port: int) -> anyio.abc.SocketStream:
    """Open a TCP connection to ``host`` and ``port``, trying each of its addresses.

    Raises:
        OSError: Every attempt failed: the error of the attempts when they all
            failed the same way (`ConnectionRefusedError`, with its errno, when
            every address refused), else an `OSError` whose message lists them.
            ``socket.gaierror`` when ``host`` can't be resolved.

    Cancellation closes whatever was opened.
    """
    try:
        return await anyio.connect_tcp(host, port)
    except OSError as exc:
        error = connect_error(exc)
        if error is exc:
            raise
    # Raised here, not in the except block: anyio's wrapper isn't its __context__.
    raise error


def connect_error(exc: OSError) -> OSError:
    """What to raise for ``exc``, raised by `anyio.connect_tcp` (see the module docstring)."""
    if type(exc) is not OSError or exc.errno is not None:
        return exc  # not anyio's wrapper: the name lookup failed, for example
    cause = exc.__cause__
    errors: list[OSError]
    if isinstance(cause, OSError):
        errors = [cause]
    elif isinstance(cause, BaseExceptionGroup):
        errors = [error for error in cause.exceptions if isinstance(error, OSError)]
        if len(errors) != len(cause.exceptions):
            return exc
    else:
        return exc
    first = errors[0]
    if all(type(error) is type(first) and error.errno == first.errno for error in errors):
        return first
    combined = OSError(f"Multiple exceptions: {', '.join(str(error) for error in errors)}")
    combined.__cause__ = first
    return combined
