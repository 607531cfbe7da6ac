"""``python -m anyws``: the command line of `anyws._cli`, also installed as ``anyws``."""

from __future__ import annotations

import sys

from ._cli import main


if __name__ == "__main__":
    sys.exit(main(prog="python -m anyws"))
