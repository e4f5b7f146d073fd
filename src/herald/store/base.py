"""Declarative base and the column types every model shares."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as UTC and always come back timezone-aware.

    SQLite has no time zones; without this, values would come back naive on SQLite and
    aware on PostgreSQL, and comparisons between them would fail.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # isoformat instead of SQLite DATETIME's own (slower) formatting: bulk inserts bind
        # several timestamps per row. The text is exactly DATETIME's storage format, so reads
        # and comparisons are unchanged.
        def process(value: datetime | None) -> str | None:
            if value is not None and value.tzinfo is UTC:
                # The common case in one C call: the same text, "+00:00" cut off.
                return value.isoformat(" ", "microseconds")[:-6]
            utc = self.process_bind_param(value, dialect)
            return None if utc is None else utc.isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # One C parse, offset included, instead of the dialect's parse plus this type's own
        # step (datetime.replace alone costs five times the parse): the status paths read
        # several timestamps per row, hundreds of rows a second.
        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:
                return datetime.fromisoformat(value + "+00:00")
            except ValueError:  # written with an offset of its own, outside Herald
                parsed = datetime.fromisoformat(value)
                return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _RandomPool(threading.local):
    """Random bytes fetched from the OS 4 KiB at a time, per thread.

    ``uuid.uuid4()`` asks the OS for 16 bytes per call: a system call, and a release of the
    GIL that can hand it to another thread for a whole switch interval, for every id. A
    bulk import makes three ids per row.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def take16(self) -> bytes:
        if not self.chunks:
            block = os.urandom(4096)
            self.chunks = [block[i : i + 16] for i in range(0, 4096, 16)]
        return self.chunks.pop()


_POOL = _RandomPool()


_RANDOM_80 = (1 << 80) - 1
# RFC 9562's version (7) and variant (0b10) bits, cleared then set in a UUIDv7.
_VERSION_VARIANT_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_VARIANT = (7 << 76) | (0x2 << 62)


def new_id() -> str:
    """A time-ordered random identifier, the same on every database: UUIDv7 text (RFC 9562).

    The first 48 bits are the Unix time in milliseconds, the 74 free bits after it come from
    the OS's CSPRNG (ids are names, never secrets). Rows made together therefore sit together
    in every index keyed by an id (message, delivery and attempt ids, and the foreign keys
    that hold them), so a batch dirties a few index pages instead of one per row. With random
    UUID4s, bench/pipeline_cpu.py at 20,000 messages spent 962-1,101 µs of CPU per message;
    with these, 792-872 µs (same hour, interleaved), and the gap grows with the tables.
    """
    random = int.from_bytes(_POOL.take16(), "big") & _RANDOM_80
    value = ((time.time_ns() // 1_000_000) << 80 | random) & _VERSION_VARIANT_MASK
    return str(uuid.UUID(int=value | _VERSION_VARIANT))


def utcnow() -> datetime:
    return datetime.now(UTC)
