"""``python -m examples.chat``: run the chat server (see server.py)."""

from __future__ import annotations

from .server import run


run()
