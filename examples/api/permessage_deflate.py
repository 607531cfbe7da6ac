"""The example in the docstring of `anyws.sansio.extensions`' permessage-deflate module.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

from anyws.sansio import Protocol
from anyws.sansio.extensions import PerMessageDeflate


def send_uncompressed(protocol: Protocol, deflate: PerMessageDeflate, data: bytes) -> None:
    # [skip-next-message]
    deflate.skip_next_message = True
    try:
        protocol.send_binary(data)
    finally:
        deflate.skip_next_message = False
    # [/skip-next-message]
