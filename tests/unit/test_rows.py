"""Plain rows: they mirror their tables and know which of their columns changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.store.rows import (
    AttemptRow,
    DeliveryRow,
    MessageRow,
    column_names,
    mark_written,
    take_changes,
)

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("cls", [MessageRow, DeliveryRow, AttemptRow])
def test_a_row_has_exactly_its_tables_columns(cls: type[MessageRow]) -> None:
    # A column added to a model but not to its row would never be read or written here.
    assert set(column_names(cls)) == set(cls.table.c.keys())


def _attempt() -> AttemptRow:
    row = AttemptRow(
        id="a1",
        delivery_id="d1",
        number=1,
        state="in_flight",
        started_at=AT,
        finished_at=None,
        provider_message_id=None,
        http_status=None,
        error_code=None,
        error_message=None,
        error_more_info=None,
    )
    mark_written(row)
    return row


def test_only_changed_columns_are_taken() -> None:
    row = _attempt()
    assert take_changes(row) == {}
    row.state = "accepted"
    row.provider_message_id = "SM1"
    row.number = 1  # the same value again is no change
    assert take_changes(row) == {"state": "accepted", "provider_message_id": "SM1"}


def test_once_taken_changes_are_written() -> None:
    row = _attempt()
    row.finished_at = AT
    assert take_changes(row) == {"finished_at": AT}
    assert take_changes(row) == {}
    row.finished_at = None
    assert take_changes(row) == {"finished_at": None}
