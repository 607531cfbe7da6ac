"""The example in the docstring of the `anyws.sync` package.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws.sync


# [hello]
def hello(uri: str) -> None:
    with anyws.sync.connect(uri) as websocket:
        websocket.send("hello")
        print(websocket.recv(timeout=10))
        # [/hello]
