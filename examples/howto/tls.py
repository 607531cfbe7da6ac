"""The code of docs/howto/tls.md: certificates for tests with trustme."""

from __future__ import annotations

import ssl


def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context and a client context that trusts it."""
    # [contexts]
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    # [/contexts]
    return server_context, client_context


def pem_files() -> None:
    """Write ``ca.pem``, ``cert.pem`` and ``key.pem`` into the current directory."""
    import trustme

    ca = trustme.CA()
    # [files]
    ca.cert_pem.write_to_path("ca.pem")
    cert = ca.issue_cert("localhost")
    cert.private_key_pem.write_to_path("key.pem")
    for index, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path("cert.pem", append=index > 0)
    # [/files]
