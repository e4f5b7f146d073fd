"""Identifiers: UUIDv7 text, time-ordered, random after the time."""

from __future__ import annotations

import time
import uuid

from herald.store.base import new_id


def test_ids_are_uuid7_with_the_current_millisecond_first() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2_000)]
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i for u, i in zip(parsed, ids, strict=True))  # canonical text
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [u.int >> 80 for u in parsed]
    assert before <= min(stamps) and max(stamps) <= after
    assert stamps == sorted(stamps)  # made later sorts later (to the millisecond)
    assert len(set(ids)) == len(ids)


def test_the_bits_after_the_time_are_random() -> None:
    # 74 random bits per id: within one millisecond, no two ids share them, and every bit
    # position takes both values across a few thousand ids.
    ids = [uuid.UUID(new_id()).int & ((1 << 80) - 1) for _ in range(4_000)]
    assert len(set(ids)) == len(ids)
    random_bits = [b for b in range(80) if b not in range(76, 80) and b not in (62, 63)]
    for bit in random_bits:
        ones = sum(i >> bit & 1 for i in ids)
        assert 1_500 < ones < 2_500, f"bit {bit} set in {ones} of 4000 ids"
