"""TLS on the client side: one place that starts it and says how it failed."""

from __future__ import annotations

import ssl as ssl_module

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream


__all__ = ["start_tls"]


async def start_tls(
    stream: anyio.abc.AnyByteStream, *, hostname: str, ssl_context: ssl_module.SSLContext | None
) -> TLSStream:
    """Run a client TLS handshake over ``stream`` and return the TLS stream.

    ``stream`` may itself be a TLS stream (TLS to a target through an ``https://``
    proxy's tunnel). On failure, and on cancellation, ``stream`` is closed.

    Args:
        stream: A connected byte stream.
        hostname: The host name to send in SNI and check the certificate against.
        ssl_context: The TLS context; ``None`` for one that verifies certificates
            with the system's CAs.

    Raises:
        ssl.SSLError: The handshake failed (an untrusted certificate, say).
        OSError: The transport failed; `ConnectionResetError` if the peer closed
            the connection during the handshake.
    """
    context = ssl_context if ssl_context is not None else ssl_module.create_default_context()
    try:
        return await TLSStream.wrap(
            stream, hostname=hostname, ssl_context=context, standard_compatible=False
        )
    except anyio.BrokenResourceError as exc:
        await anyio.aclose_forcefully(stream)
        # anyio wraps the SSLError (an OSError) that says what went wrong.
        if isinstance(exc.__cause__, OSError):
            raise exc.__cause__ from None
        raise
    except anyio.EndOfStream as exc:
        await anyio.aclose_forcefully(stream)
        raise ConnectionResetError("connection closed during the TLS handshake") from exc
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
