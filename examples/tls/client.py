"""A ``wss://`` client that trusts your own CA (and, for mutual TLS, has a certificate).

    python examples/tls/client.py wss://localhost:8765/ --ca ca.pem
    python examples/tls/client.py ... --cert client.pem --key client-key.pem  # mutual TLS

Without ``ssl=``, `anyws.connect` verifies the server against the system's CAs, which
don't know a private CA: the connection then fails with ``CERTIFICATE_VERIFY_FAILED``.
"""

from __future__ import annotations

import argparse
import ssl

import anyio

import anyws


def client_context(
    cafile: str, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    # Verifies the certificate chain and the host name, like the default context,
    # but against your CA instead of the system's.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if certfile is not None:  # mutual TLS: present a client certificate
        context.load_cert_chain(certfile, keyfile)
    return context


async def client(uri: str, context: ssl.SSLContext) -> str:
    async with anyws.connect(uri, ssl=context) as websocket:
        await websocket.send("hello over TLS")
        with anyio.fail_after(10):
            return await websocket.recv(decode=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("uri")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    context = client_context(args.ca, args.cert, args.key)
    print(anyio.run(client, args.uri, context, backend=args.backend))
