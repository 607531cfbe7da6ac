"""Masking (RFC 6455, section 5.3): both implementations against a plain reference."""

from __future__ import annotations

import array
import itertools
import operator
import os
import platform
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from anyws.sansio import _mask


MaskFunction = Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]

IMPLEMENTATIONS = [
    pytest.param(_mask.apply_mask_py, id="python"),
    pytest.param(
        _mask.apply_mask_c,
        id="c",
        marks=pytest.mark.skipif(
            _mask.apply_mask_c is None,
            reason="C extension not built, or disabled by ANYWS_NO_SPEEDUPS",
        ),
    ),
]

implementations = pytest.mark.parametrize("apply_mask", IMPLEMENTATIONS)

# Around the pure-Python path's switch from big integers to lane translation, around
# the C path's 64/16/8-byte steps and its GIL threshold, and large.
EDGE_SIZES = sorted(
    {
        *range(0, 34),
        *(
            base + delta
            for base in (64, 128, _mask._TRANSLATE_THRESHOLD, 65536)
            for delta in (-5, -1, 0, 1, 3)
        ),
        2**20 + 3,
    }
)
LARGE_SIZES = [2**20 + 3, 2**20, 3 * 2**20 + 1]


def reference(data: bytes, mask: bytes) -> bytes:
    """The definition, byte by byte: octet i is XOR-ed with octet i % 4 of the key."""
    return bytes(map(operator.xor, data, itertools.cycle(mask)))


def as_kind(data: bytes, kind: str, offset: int = 0) -> bytes | bytearray | memoryview:
    """Present ``data`` as one of the buffer types a caller may pass."""
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "slice":
        # A view that starts ``offset`` bytes into a larger buffer: unaligned.
        padded = bytearray(os.urandom(offset)) + data + bytearray(os.urandom(5))
        return memoryview(padded)[offset : offset + len(data)]
    if kind == "readonly-slice":
        frozen = bytes(offset) + data + b"tail"
        return memoryview(frozen)[offset : offset + len(data)]
    if kind == "strided":
        # Not contiguous: every other byte of a buffer twice as long.
        spread = bytearray(2 * len(data))
        spread[offset % 2 :: 2] = data
        return memoryview(spread)[offset % 2 :: 2]
    raise AssertionError(kind)


KINDS = ["bytes", "bytearray", "memoryview", "slice", "readonly-slice", "strided"]

masks = st.binary(min_size=4, max_size=4)


@implementations
@given(
    data=st.binary(min_size=0, max_size=300),
    mask=masks,
    kind=st.sampled_from(KINDS),
    offset=st.integers(0, 15),
)
def test_matches_reference(
    apply_mask: MaskFunction, data: bytes, mask: bytes, kind: str, offset: int
) -> None:
    result = apply_mask(as_kind(data, kind, offset), mask)
    assert type(result) is bytes
    assert result == reference(data, mask)


@implementations
@settings(max_examples=8, deadline=None)
@given(
    size=st.sampled_from(LARGE_SIZES),
    seed=st.integers(0, 2**32 - 1),
    mask=masks,
    kind=st.sampled_from(KINDS),
    offset=st.integers(0, 15),
)
def test_large_matches_reference(
    apply_mask: MaskFunction, size: int, seed: int, mask: bytes, kind: str, offset: int
) -> None:
    data = random.Random(seed).randbytes(size)
    assert apply_mask(as_kind(data, kind, offset), mask) == reference(data, mask)


@implementations
@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("kind", ["bytes", "slice"])
def test_edge_sizes(apply_mask: MaskFunction, size: int, kind: str) -> None:
    data = random.Random(size).randbytes(size)
    mask = b"\x01\x80\xfe\x5a"
    assert apply_mask(as_kind(data, kind, offset=3), mask) == reference(data, mask)


@pytest.mark.skipif(_mask.apply_mask_c is None, reason="C extension not built")
@given(data=st.binary(max_size=5000), mask=masks, offset=st.integers(0, 15))
def test_implementations_agree(data: bytes, mask: bytes, offset: int) -> None:
    assert _mask.apply_mask_c is not None
    view = as_kind(data, "slice", offset)
    assert _mask.apply_mask_c(view, mask) == _mask.apply_mask_py(view, mask)


@implementations
def test_round_trip(apply_mask: MaskFunction) -> None:
    data = os.urandom(10_000)
    mask = os.urandom(4)
    assert apply_mask(apply_mask(data, mask), mask) == data


@implementations
def test_known_vector(apply_mask: MaskFunction) -> None:
    # RFC 6455, section 5.7: a masked "Hello".
    assert apply_mask(b"Hello", b"\x37\xfa\x21\x3d") == b"\x7f\x9f\x4d\x51\x58"


@implementations
@pytest.mark.parametrize("mask", [b"", b"\x01", b"abc", b"abcde", b"12345678"])
@pytest.mark.parametrize("size", [0, 10, 5000])
def test_bad_mask(apply_mask: MaskFunction, mask: bytes, size: int) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask(bytes(size), mask)


@implementations
def test_mask_as_bytearray(apply_mask: MaskFunction) -> None:
    data = os.urandom(3000)
    assert apply_mask(data, bytearray(b"abcd")) == reference(data, b"abcd")


@implementations
@pytest.mark.parametrize("data", ["text", 42, None])
def test_not_a_buffer(apply_mask: MaskFunction, data: object) -> None:
    with pytest.raises(TypeError):
        apply_mask(data, b"abcd")  # type: ignore[arg-type]


@implementations
@pytest.mark.parametrize("size", [10, 5000])
def test_multibyte_items(apply_mask: MaskFunction, size: int) -> None:
    # A buffer's bytes are masked, whatever its item size or shape.
    items = array.array("I", range(size))
    raw = items.tobytes()
    mask = b"\x10\x20\x30\x40"
    assert apply_mask(items, mask) == reference(raw, mask)  # type: ignore[arg-type]
    assert apply_mask(memoryview(raw).cast("I"), mask) == reference(raw, mask)
    assert apply_mask(memoryview(raw).cast("B", (size, 4)), mask) == reference(raw, mask)
    strided = memoryview(items)[::2]
    assert apply_mask(strided, mask) == reference(strided.tobytes(), mask)


@implementations
@pytest.mark.parametrize("size", [100, 5000, 200_000])
def test_input_left_alone(apply_mask: MaskFunction, size: int) -> None:
    data = bytearray(os.urandom(size))
    before = bytes(data)
    apply_mask(data, b"\xff\xff\xff\xff")
    apply_mask(memoryview(data)[1:], b"\xff\xff\xff\xff")
    assert data == before


@implementations
def test_subclasses(apply_mask: MaskFunction) -> None:
    class B(bytes):
        pass

    class BA(bytearray):
        pass

    mask = b"wxyz"
    for size in (7, 5000):
        data = os.urandom(size)
        assert apply_mask(B(data), mask) == reference(data, mask)
        assert apply_mask(BA(data), mask) == reference(data, mask)


@implementations
def test_threads(apply_mask: MaskFunction) -> None:
    # The C path releases the GIL on large inputs; results must not mix up.
    inputs = [(os.urandom(300_000), os.urandom(4)) for _ in range(4)]
    expected = [reference(data, mask) for data, mask in inputs]
    results: list[list[bytes]] = [[] for _ in inputs]

    def work(index: int) -> None:
        data, mask = inputs[index]
        for _ in range(5):
            results[index].append(apply_mask(memoryview(data)[0:], mask))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, outputs in enumerate(results):
        assert outputs == [expected[index]] * 5


def test_best_implementation_bound() -> None:
    if _mask.apply_mask_c is not None:
        assert _mask.apply_mask is _mask.apply_mask_c
        assert _mask.IMPLEMENTATION == "c"
    else:
        assert _mask.apply_mask is _mask.apply_mask_py
        assert _mask.IMPLEMENTATION == "python"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


@pytest.mark.skipif(
    not _flag("CI") or _flag("ANYWS_NO_SPEEDUPS"),
    reason="checked in CI, unless ANYWS_NO_SPEEDUPS is set",
)
@pytest.mark.skipif(
    platform.python_implementation() != "CPython", reason="the extension is CPython only"
)
def test_extension_built_in_ci() -> None:
    # A CI run must not lose the C extension silently (compiler missing from the
    # image, build step dropped): set ANYWS_NO_SPEEDUPS=1 to test the fallback on purpose.
    assert _mask.apply_mask_c is not None, (
        "anyws.sansio._speedups is not importable: build it with `pip install -e .` "
        "(or `python setup.py build_ext --inplace`), or set ANYWS_NO_SPEEDUPS=1"
    )
    assert _mask.IMPLEMENTATION == "c"


def _implementation_in_subprocess(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("ANYWS_NO_SPEEDUPS", None)
    if env_value is not None:
        env["ANYWS_NO_SPEEDUPS"] = env_value
    # Import the same anyws as this process, wherever it is installed.
    root = str(Path(_mask.__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = (
        "from anyws.sansio import _mask; "
        "print(_mask.IMPLEMENTATION, _mask.apply_mask_c is None, "
        "_mask.apply_mask.__module__ == _mask.__name__)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def test_no_speedups_env_var() -> None:
    assert _implementation_in_subprocess("1") == "python True True"


@pytest.mark.skipif(_mask.apply_mask_c is None, reason="C extension not built")
@pytest.mark.parametrize("value", [None, "", "0"])
def test_speedups_used_by_default(value: str | None) -> None:
    assert _implementation_in_subprocess(value) == "c False False"
