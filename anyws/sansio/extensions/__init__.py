"""Extension API of the sans-I/O core (RFC 6455, section 9), and permessage-deflate."""

from __future__ import annotations

from ._base import (
    ClientExtensionFactory as ClientExtensionFactory,
    Extension as Extension,
    ExtensionParameter as ExtensionParameter,
    ServerExtensionFactory as ServerExtensionFactory,
)
from ._permessage_deflate import (
    ClientPerMessageDeflateFactory as ClientPerMessageDeflateFactory,
    PerMessageDeflate as PerMessageDeflate,
    ServerPerMessageDeflateFactory as ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate as enable_client_permessage_deflate,
    enable_server_permessage_deflate as enable_server_permessage_deflate,
)


__all__ = [
    "ClientExtensionFactory",
    "ClientPerMessageDeflateFactory",
    "Extension",
    "ExtensionParameter",
    "PerMessageDeflate",
    "ServerExtensionFactory",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]
