"""Form-encoded webhook parameters (Twilio's): every name maps to its values, in order.

Twilio signs every posted parameter, blank ones and repeated ones included, so a form is
kept whole as lists rather than folded into one value per name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

FormParams = Mapping[str, Sequence[str]]


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, blank values kept."""
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


def first(params: FormParams, name: str) -> str | None:
    """The first value posted under ``name``, if any."""
    values = params.get(name)
    return values[0] if values else None
