"""A send task's file rows, checked one by one before they become messages.

Everything here depends on the row alone (no database, no other rows), so it can run in
the process that reads the file, beside the one that stores the messages. Duplicates
across rows are the importer's business: they need every row seen before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from herald.domain import spreadsheets as sheets
from herald.domain.email import validate_email_address
from herald.domain.phones import InvalidPhone

if TYPE_CHECKING:  # the reader process should not pay for importing pydantic models
    from herald.schemas.messages import Scalar

# How the report names what a row lacks, per destination column.
_ADDRESS_NAMES = {
    "phone": "phone number",
    "email": "e-mail address",
    "messengerUserId": "chat id (messengerUserId)",
}


@dataclass(slots=True)
class ImportRow:
    number: int
    cells: dict[str, str]
    # The row's addresses by destination column (phone in E.164, e-mail checked).
    addresses: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Scalar] = field(default_factory=dict)
    message_id: str | None = None
    # Whether the row's keys went into the task's seen set (a duplicate's did not).
    claimed: bool = False
    error: str | None = None
    error_code: str | None = None
    error_column: str | None = None

    def reject(self, message: str, code: str, column: str | None) -> None:
        self.error, self.error_code, self.error_column = message, code, column

    @property
    def keys(self) -> list[str]:
        """What makes this row's person a duplicate of another's (one key per address)."""
        return [_key(column, value) for column, value in self.addresses.items()]


def _key(column: str, value: str) -> str:
    # Domains are case-insensitive and people type addresses in any case; phones are E.164,
    # chat ids exact. The three kinds cannot collide (+digits, x@y, ids without @ or +).
    return value.lower() if column == "email" else value


def destination_of(keys: Sequence[str]) -> str:
    """The keys as stored on the task row, so a resumed import still finds duplicates."""
    stored = ""
    for key in keys:
        # The column holds 200 characters: an address too long to fit is left out (only a
        # duplicate of it after a restart would go unnoticed).
        candidate = f"{stored} {key}" if stored else key
        if len(candidate) <= 200:
            stored = candidate
    return stored


def _address(column: str, raw: str, region: str | None) -> str:
    """A cell's address, normalised; raises ValueError (InvalidPhone for phones)."""
    if column == "phone":
        if raw.startswith("+"):
            # Already international: only the key is made here. The number is parsed once,
            # by the reader (sheet_reader._phone_checks) under the key create_messages asks
            # for, and create_messages refuses it with its own message if it is invalid.
            return "+" + "".join(ch for ch in raw if ch.isdigit())
        return sheets.normalise_phone(raw, region)
    if column == "email":
        return validate_email_address(raw)
    return raw


def check_row(
    cells: dict[str, str],
    number: int,
    region: str | None,
    columns: Sequence[str],
    renamed: Mapping[str, str] | None = None,
) -> ImportRow:
    """A row checked on its own: its variables, and its addresses read or why not.

    ``columns`` are the destination columns of the task's channels; a row needs at least
    one of them, as a message's destination needs an address for one of its channels.
    ``renamed`` gives the variable a column fills when it is not named exactly like it
    (:func:`herald.domain.spreadsheets.variable_names`).
    """
    row = ImportRow(number, cells)
    renamed = renamed or {}
    row.variables = {
        renamed.get(k, k): v
        for k, v in cells.items()
        if k not in sheets.DESTINATION_COLUMNS and v != ""
    }
    for column in columns:
        raw = cells.get(column, "").strip()
        if not raw:
            continue
        try:
            row.addresses[column] = _address(column, raw, region)
        except InvalidPhone as e:
            row.reject(f"{e}.", "invalid_phone", column)
            return row
        except ValueError as e:
            row.reject(str(e), "invalid_email", column)
            return row
    if not row.addresses:
        if list(columns) == ["phone"]:
            row.reject("The phone number is missing.", "missing_phone", "phone")
        else:
            names = " or ".join(_ADDRESS_NAMES.get(c, c) for c in columns)
            row.reject(
                f"The row has no {names}.",
                "missing_address",
                columns[0] if len(columns) == 1 else None,
            )
    return row


def claim(row: ImportRow, seen: set[str]) -> None:
    """Reject ``row`` if one of its addresses appears in an earlier row, else remember them."""
    if row.error is not None:
        return
    for column, key in zip(row.addresses, row.keys, strict=True):
        if key in seen:
            row.reject(
                f"{row.addresses[column]} already appears in an earlier row of this task.",
                "duplicate_destination",
                column,
            )
            return
    seen.update(row.keys)
    row.claimed = True
