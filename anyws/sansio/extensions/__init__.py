"""Extension API of the sans-I/O core (RFC 6455, section 9)."""

from __future__ import annotations

from ._base import (
    ClientExtensionFactory as ClientExtensionFactory,
    Extension as Extension,
    ExtensionParameter as ExtensionParameter,
    ServerExtensionFactory as ServerExtensionFactory,
)


__all__ = ["ClientExtensionFactory", "Extension", "ExtensionParameter", "ServerExtensionFactory"]
