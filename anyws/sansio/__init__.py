"""The sans-I/O WebSocket protocol core: bytes in, events and bytes out.

It imports only the standard library, does no I/O, reads no clock and starts no task.
"""

from __future__ import annotations
