"""Masking (RFC 6455, section 5.3): XOR the payload with a 4-byte key.

Placeholder pure-Python path; the compiled speedup comes in its own change.
"""

from __future__ import annotations


__all__ = ["apply_mask"]


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """Return ``data`` XOR-ed with the repeated 4-byte ``mask``."""
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    n = len(data)
    if n == 0:
        return b""
    key = int.from_bytes(mask * (n // 4) + mask[: n % 4], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
