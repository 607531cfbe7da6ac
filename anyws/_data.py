"""What the send calls accept, and the `TypeError` that says so for anything else.

`Connection.send`, the threaded `anyws.sync` ``send`` and `broadcast` share these
messages, so that a mistake reads the same everywhere. The commonest one, a `dict`
passed where JSON text was meant, gets websockets' words: "data is a dict-like object".
"""

from __future__ import annotations

from collections.abc import Mapping


__all__ = ["data_type_error"]


def data_type_error(data: object, accepted: str, *, caller: str = "send()") -> TypeError:
    """The `TypeError` for ``data`` of a type that ``caller`` doesn't take.

    Args:
        data: What was passed.
        accepted: What is accepted, as a noun phrase: ``"str or bytes-like"``.
        caller: The call, as the message names it.
    """
    kind = type(data).__name__
    if isinstance(data, Mapping):
        return TypeError(
            f"data is a dict-like object ({kind}): {caller} takes {accepted}; "
            "to send JSON, pass json.dumps(data)"
        )
    return TypeError(f"data must be {accepted}, not {kind}")
