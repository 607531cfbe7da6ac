"""Build the optional C extension; all other metadata lives in pyproject.toml.

``anyws.sansio._speedups`` (masking) is compiled when a C compiler and the Python
headers are there. If the build fails, setuptools prints a warning and goes on: the
package installs and runs on its pure-Python fallback. Environment variables:

``ANYWS_NO_EXTENSION=1``
    Don't try to build the extension at all.
``ANYWS_REQUIRE_EXTENSION=1``
    Fail the build if the extension can't be built (release wheels, CI).

``ANYWS_NO_SPEEDUPS=1`` is read at import time, not here: it makes an installed
anyws ignore its compiled extension.
"""

from __future__ import annotations

import os
import platform
import sys

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _extensions() -> list[Extension]:
    if _flag("ANYWS_NO_EXTENSION"):
        return []
    # Only CPython has the C API this extension uses; PyPy's JIT does well on the
    # pure-Python path and its cpyext layer would make the call slower, not faster.
    if platform.python_implementation() != "CPython":
        if _flag("ANYWS_REQUIRE_EXTENSION"):
            sys.exit("ANYWS_REQUIRE_EXTENSION is set, but the extension needs CPython")
        return []
    return [
        Extension(
            "anyws.sansio._speedups",
            sources=["anyws/sansio/_speedups.c"],
            # optional=True: a compile or link error (no compiler, no headers) is
            # reported as a warning and the install carries on without the module.
            optional=not _flag("ANYWS_REQUIRE_EXTENSION"),
        )
    ]


setup(ext_modules=_extensions())
