"""Masking (RFC 6455, section 5.3): XOR the payload with a repeated 4-byte key.

Two implementations compute the same function:

- `apply_mask_c`, from the optional C extension ``anyws.sansio._speedups`` (SIMD, GB/s),
  or ``None`` when it isn't built or when ``ANYWS_NO_SPEEDUPS=1`` is set at import time;
- `apply_mask_py`, pure Python, the fallback.

`apply_mask` is bound to the best one available. `IMPLEMENTATION` says which: ``"c"``
or ``"python"``.

The pure-Python path picks a method by size, from measurements on CPython 3.11:

- below `_TRANSLATE_THRESHOLD` bytes, one XOR of two big integers: the cost is mostly
  fixed (about 0.6 µs at 64 bytes), and ``int.from_bytes``/``int.to_bytes`` run at about
  1 GB/s each, so it tops out near 0.45 GB/s, and it falls to 0.3 GB/s at 1 MiB, when
  the integers no longer fit in the L2 cache;
- from there on, ``bytearray.translate`` over the four byte lanes (each lane is XOR-ed
  with one key byte, that is, a 256-byte lookup table): it costs ~2 µs more up front but
  runs at ~0.5-0.6 GB/s; the two cross between 2 and 3 KiB. Translating ``data[i::4]`` straight
  from a memoryview is 3x slower (``memoryview.tobytes()`` on a strided view copies byte
  by byte through a generic path), and working in cache-sized blocks gains nothing once
  the allocator reuses its buffers, as it does in a long-running connection.

The C extension runs at 15-35 GB/s from 4 KiB up and costs about 70 ns per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable


__all__ = ["IMPLEMENTATION", "apply_mask", "apply_mask_c", "apply_mask_py"]

_MaskFunction = Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]

#: Payloads this long and longer take the lane-translate path.
_TRANSLATE_THRESHOLD = 2560

_from_bytes = int.from_bytes


def _xor_table(key: int) -> bytes:
    """Return the 256-byte table that maps every byte ``b`` to ``b ^ key``."""
    identity = _from_bytes(bytes(range(256)), "little")
    return (identity ^ _from_bytes(bytes((key,)) * 256, "little")).to_bytes(256, "little")


#: ``_XOR_TABLES[k]`` is the `bytes.translate` table for XOR with the byte ``k`` (64 KiB).
_XOR_TABLES: tuple[bytes, ...] = tuple(_xor_table(key) for key in range(256))


def apply_mask_py(data: bytes | bytearray | memoryview, mask: bytes | bytearray, /) -> bytes:
    """Return ``data`` XOR-ed with the repeated 4-byte ``mask`` (pure Python)."""
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    if not isinstance(data, (bytes, bytearray)):
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            # len() counts items, not bytes: look at the raw bytes instead.
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        data = view
    n = len(data)
    if n < _TRANSLATE_THRESHOLD:
        # int.from_bytes reads any buffer, strided memoryviews included.
        key = (mask * ((n + 3) >> 2))[:n]
        return (_from_bytes(data, "little") ^ _from_bytes(key, "little")).to_bytes(n, "little")
    # The output buffer starts as a copy of the input (one memcpy, from any buffer)
    # and is masked in place, lane by lane.
    out = bytearray(data)
    t0, t1, t2, t3 = (_XOR_TABLES[k] for k in mask)
    out[0::4] = out[0::4].translate(t0)
    out[1::4] = out[1::4].translate(t1)
    out[2::4] = out[2::4].translate(t2)
    out[3::4] = out[3::4].translate(t3)
    return bytes(out)


def _load_c() -> _MaskFunction | None:
    if os.environ.get("ANYWS_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        from ._speedups import apply_mask as c_apply_mask
    except ImportError:
        return None
    return c_apply_mask


#: The compiled implementation, or ``None`` when it isn't available or is disabled.
apply_mask_c: _MaskFunction | None = _load_c()

apply_mask: _MaskFunction
if apply_mask_c is not None:
    apply_mask = apply_mask_c
    IMPLEMENTATION = "c"
else:
    apply_mask = apply_mask_py
    IMPLEMENTATION = "python"
