"""anyws: WebSocket client and server for structured concurrency, on anyio."""

from __future__ import annotations
