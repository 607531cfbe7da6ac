"""The connection options: one definition of their defaults.

`ConnectionOptions` holds the settings of a running connection that `connect`,
`serve`, the Unix socket variants, `route`, `reconnect`, `anyws.sync` and
`anyws.testing` pass to a `Connection`; the defaults are written here once, and
the signatures that repeat them for their documentation are checked against them
by ``tests/test_layering.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


__all__ = ["DEFAULTS", "ConnectionOptions"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """How a connection runs once open; see `connect` for what each option does."""

    ping_interval: float | None = 20
    ping_timeout: float | None = 20
    close_timeout: float | None = 10
    max_queue: int | None = 16
    write_limit: int = 2**15

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of a ``create_connection`` factory."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


#: The defaults, shared by every signature that takes these options.
DEFAULTS = ConnectionOptions()
