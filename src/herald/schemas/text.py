"""Text Herald can store: no NUL character (U+0000) anywhere in what a client sends.

PostgreSQL refuses NUL in text and in JSON, so a request holding one failed with a 500 there
(and was stored as sent on SQLite); no name, message, address or variable needs one.
"""

from __future__ import annotations

from typing import Any

from herald.errors import ValidationFailed

NUL = "\x00"
INVALID_CHARACTER = "invalid_character"
NUL_ADVICE = "contains a NUL character (\\u0000), which Herald cannot store; remove it."


def nul_at(value: Any) -> str | None:
    """Where in ``value`` (decoded JSON: dicts, lists, scalars) a NUL first appears, or None.

    The place is spelled as in error paths: ``messages[0].destinations[0].phone``; ``""``
    when ``value`` is itself such a string.
    """
    if isinstance(value, str):
        return "" if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if NUL in name:
                return name.replace(NUL, "\\u0000")
            inner = nul_at(item)
            if inner is not None:
                return name + (inner if not inner or inner.startswith("[") else "." + inner)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            inner = nul_at(item)
            if inner is not None:
                return f"[{index}]" + (inner if not inner or inner.startswith("[") else "." + inner)
    return None


def nul_refused(path: str) -> ValidationFailed:
    """The 422 for a NUL at ``path``, worded as for a request body's."""
    return ValidationFailed(
        f"{path}: {NUL_ADVICE}",
        code=INVALID_CHARACTER,
        details={"errors": [{"path": path, "message": NUL_ADVICE, "code": INVALID_CHARACTER}]},
    )
