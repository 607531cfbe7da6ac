"""International domain names: IDNA 2008 with UTS #46, through the ``idna`` package.

The standard library's ``"idna"`` codec implements IDNA 2003, whose transitional
mappings send ``faß.de`` to ``fass.de``, another domain than browsers (and anyio,
which resolves names with ``idna.encode(host, uts46=True)``) reach. The sans-I/O
core stays on the standard library: `~anyws.sansio.parse_uri` takes the encoder to
use, and anyws passes `idna_encode` wherever it reads a host (URIs, redirects,
proxies), so the ``Host`` header, TLS's server name and the address connected to
all agree with browsers.
"""

from __future__ import annotations

import idna


__all__ = ["idna_encode"]


def idna_encode(host: str) -> str:
    """Encode a non-ASCII host name to ASCII (``xn--`` labels), as browsers do.

    Raises:
        UnicodeError: ``host`` isn't a valid internationalized domain name
            (`idna.IDNAError` is a `UnicodeError`).
    """
    return idna.encode(host, uts46=True).decode("ascii")
