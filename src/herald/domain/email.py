"""E-mail addresses: what Herald accepts as one, checked when a message is accepted and again
by the SMTP adapter before anything goes on the wire."""

from __future__ import annotations

import re

MAX_ADDRESS_LENGTH = 254

# One plain address: none of the characters that would let it carry a second address, a
# display name, a comment or another header line.
_ADDRESS = re.compile(r'^[^@\s<>()\[\]\\,;:"\x00-\x1f\x7f]+@[^@\s<>()\[\]\\,;:"\x00-\x1f\x7f]+$')


def validate_email_address(value: str) -> str:
    """Return ``value`` as one plain ASCII address (IDNA domain), or raise ValueError."""
    if len(value) > MAX_ADDRESS_LENGTH or not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not a single plain e-mail address.")
    local, _, domain = value.partition("@")
    if not local.isascii():
        # Would need SMTPUTF8 end to end; not supported yet.
        raise ValueError(f"{value!r} has a non-ASCII local part, which is not supported.")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise ValueError(f"{value!r} has an invalid domain.") from e
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise ValueError(f"{value!r} has an invalid domain.")
    return f"{local}@{domain}"
