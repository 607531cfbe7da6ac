"""The example in the docstring of `anyws.reconnect`.

The API reference shows the code between two markers (`# [name]` ... `# [/name]`) in
that docstring, byte for byte; ``tests/test_docstring_examples.py`` checks that and runs
it, on every backend.
"""

from __future__ import annotations

import anyws


async def main(uri: str) -> None:
    # [reconnect]
    async for attempt in anyws.reconnect(uri):
        try:
            async with attempt as websocket:
                async for message in websocket:
                    print(message)
        except anyws.ConnectionClosed:
            continue
    # [/reconnect]
