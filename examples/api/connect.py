"""The example in the docstring of the `anyws` package.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws


# [hello]
async def hello(uri: str) -> None:
    async with anyws.connect(uri) as websocket:
        await websocket.send("hello")
        print(await websocket.recv())
        # [/hello]
