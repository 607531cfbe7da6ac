"""The example in the docstring of `anyws.sansio.Headers`.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

from anyws.sansio import Headers


def build() -> Headers:
    # [headers]
    headers = Headers({"Host": "example.com"}, Upgrade="websocket")
    # [/headers]
    return headers
