"""A ``wss://`` echo server with your own certificate.

    python examples/tls/server.py --cert cert.pem --key key.pem [--port 8765]
    python examples/tls/server.py ... --client-ca ca.pem   # mutual TLS

``--cert`` is the certificate chain in PEM (the server's certificate first, then the
intermediates), ``--key`` its private key. With ``--client-ca``, clients must present
a certificate signed by that CA.
"""

from __future__ import annotations

import argparse
import ssl

import anyio

import anyws


def server_context(certfile: str, keyfile: str, client_ca: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    if client_ca is not None:  # mutual TLS: ask for, and verify, a client certificate
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


async def echo(websocket: anyws.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main(port: int, context: ssl.SSLContext) -> None:
    async with anyws.serve(echo, "localhost", port, ssl=context) as server:
        print(f"listening on wss://localhost:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca")
    args = parser.parse_args()
    context = server_context(args.cert, args.key, args.client_ca)
    anyio.run(main, args.port, context, backend=args.backend)
