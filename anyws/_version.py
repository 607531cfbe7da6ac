"""The version of anyws, read by setuptools at build time (pyproject.toml)."""

from __future__ import annotations


__version__ = "0.1.0.dev0"
