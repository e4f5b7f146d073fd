"""GroupCommitter: concurrent submissions share one apply; each caller gets its own result."""

from __future__ import annotations

import asyncio

import pytest

from herald.services.delivery.batching import GroupCommitter


async def test_concurrent_items_share_a_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def apply(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_wait=0.01)
    results = await asyncio.gather(*(committer.submit(i) for i in range(6)), return_exceptions=True)
    await committer.aclose()
    assert batches == [[0, 1, 2, 3, 4, 5]]
    assert results[0::2] == [0, 20, 40]
    assert [str(e) for e in results[1::2]] == ["odd 1", "odd 3", "odd 5"]


async def test_batches_are_capped_and_a_lone_item_is_not_held() -> None:
    batches: list[list[int]] = []

    async def apply(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_items=4, max_wait=0.01)
    assert await asyncio.gather(*(committer.submit(i) for i in range(10))) == list(range(10))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert await asyncio.wait_for(committer.submit(99), timeout=5) == 99
    await committer.aclose()


async def test_a_failed_batch_is_retried_then_fails_every_caller() -> None:
    calls = 0

    async def apply(items: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        raise RuntimeError("database is locked")

    committer: GroupCommitter[int, int] = GroupCommitter(apply, attempts=3)
    with pytest.raises(RuntimeError, match="locked"):
        await committer.submit(1)
    await committer.aclose()
    assert calls == 3


async def test_an_item_that_breaks_its_batch_fails_alone() -> None:
    applied: list[int] = []
    calls = 0

    async def apply(items: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if 13 in items:  # e.g. a value the database refuses: the whole transaction fails
            raise TypeError("cannot apply 13")
        applied.extend(items)
        return [i * 10 for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_wait=0.01)
    results = await asyncio.gather(
        *(committer.submit(i) for i in range(40)), return_exceptions=True
    )
    await committer.aclose()
    assert [r for i, r in enumerate(results) if i != 13] == [i * 10 for i in range(40) if i != 13]
    assert isinstance(results[13], TypeError)
    assert sorted(applied) == [i for i in range(40) if i != 13]  # each applied exactly once
    assert calls <= 2 * 6 + 1  # halving: two applications per level, not one per item


async def test_a_failing_database_fails_the_batch_without_trying_every_item() -> None:
    calls = 0

    async def apply(items: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        raise ConnectionError("the database went away")

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_wait=0.01, attempts=3)
    results = await asyncio.gather(
        *(committer.submit(i) for i in range(64)), return_exceptions=True
    )
    await committer.aclose()
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 3 + 6  # attempts, plus one per halving down to a single item


async def test_a_wrong_number_of_results_fails_the_batch_instead_of_hanging_callers() -> None:
    async def apply(items: list[int]) -> list[int | Exception]:
        return [1] if len(items) > 1 else [items[0] * 10]

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_wait=0.01)
    results = await asyncio.wait_for(
        asyncio.gather(*(committer.submit(i) for i in range(4))), timeout=10
    )
    await committer.aclose()
    assert results == [0, 10, 20, 30]
