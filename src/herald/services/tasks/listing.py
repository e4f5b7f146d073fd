"""Reading send tasks: one task with its progress, its status with a rate and an ETA, the list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.statuses import FINAL, Status
from herald.errors import NotFound
from herald.store import tasks as store
from herald.store.db import read_snapshot
from herald.store.tasks import SORT_KEYS, Task

__all__ = ["SORT_KEYS", "find_task", "get_task", "list_tasks", "task_item", "task_status"]

# Statuses after which nothing more happens to a message as far as a task is concerned
# (a delivered SMS may still be read, but it is no longer work in progress).
PROCESSED = frozenset({*FINAL, Status.DELIVERED, Status.READ})
# How far back the sending rate is measured.
RATE_WINDOW = timedelta(seconds=60)


async def find_task(
    session: AsyncSession, project_id: str, task_id: str, *, lock: bool = False
) -> Task:
    """The project's task, or a 404; ``lock``: locked for change (PostgreSQL)."""
    task = await store.load_task(session, task_id, project_id=project_id, lock=lock)
    if task is None:
        raise NotFound(f"No task with id {task_id}.", code="task_not_found")
    return task


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_item(task: Task, counts: dict[str, int]) -> dict[str, Any]:
    """TWIN's Task plus Herald's progress detail. Nothing non-null is ever sent as null."""
    total = sum(counts.values())
    processed = sum(n for s, n in counts.items() if Status(s) in PROCESSED)
    in_progress = counts.get("sending", 0) + counts.get("sent", 0)
    completed = counts.get("delivered", 0) + counts.get("read", 0)
    item: dict[str, Any] = {
        "id": task.id,
        "name": task.name,
        "status": task.status,
        "createdAt": task.created_at.isoformat(),
        "updatedAt": task.updated_at.isoformat(),
        "allowedTimeRanges": task.settings.get("allowedTimeRanges") or [],
        "totalMessageCount": total,
        "totalProcessedMessageCount": processed,
        "inProgressMessageCount": in_progress,
        "completedMessageCount": completed,
        "progress": int(processed * 100 / total) if total else 0,
        "templateId": task.template_id,
        "policy": task.policy,
        "defaultRegion": task.default_region,
        "settings": task.settings,
        "fileName": task.file_name,
        "fileFormat": task.file_format,
        "rowsRead": task.rows_read,
        "rowsAccepted": task.rows_accepted,
        "rowsRejected": task.rows_rejected,
        "imported": task.imported_at is not None,
        "messages": counts,
        "startedAt": _iso(task.started_at),
        "finishedAt": _iso(task.finished_at),
        "error": None,
    }
    if task.error:
        item["error"] = {"code": task.error_code, "message": task.error}
    return item


async def get_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> dict[str, Any]:
    """One task as stored (its status is kept up to date by whatever ends its messages)."""
    task = await find_task(session, project_id, task_id)
    counts = (await store.message_counts(session, project_id, [task_id])).get(task_id, {})
    return task_item(task, counts)


async def task_status(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> dict[str, Any]:
    """TWIN's ``{"status"}`` plus counts per message status, the rate and an ETA."""
    item = await get_task(session, project_id, task_id, now=now)
    sent_recently = await store.sent_since(session, project_id, task_id, now - RATE_WINDOW)
    task = await find_task(session, project_id, task_id)
    since = max(task.started_at or now, now - RATE_WINDOW)
    elapsed = max((now - since).total_seconds(), 1.0)
    rate = sent_recently / elapsed
    waiting = sum(n for s, n in item["messages"].items() if s in ("queued", "scheduled", "sending"))
    eta = int(waiting / rate) if rate > 0 and item["status"] == "running" else None
    return {
        "status": item["status"],
        "messages": item["messages"],
        "rowsRead": item["rowsRead"],
        "rowsAccepted": item["rowsAccepted"],
        "rowsRejected": item["rowsRejected"],
        "imported": item["imported"],
        "progress": item["progress"],
        "totalMessageCount": item["totalMessageCount"],
        "totalProcessedMessageCount": item["totalProcessedMessageCount"],
        "ratePerSecond": round(rate, 2),
        "etaSeconds": eta,
        "error": item["error"],
    }


async def list_tasks(
    session: AsyncSession,
    project_id: str,
    *,
    name: str | None = None,
    statuses: Sequence[str] = (),
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    sort: tuple[str, bool] = ("createdAt", True),
) -> dict[str, Any]:
    """TWIN's ``{count, items}``, newest first unless ``sort`` (a key of :data:`SORT_KEYS`,
    and whether descending) says otherwise."""
    await read_snapshot(session)  # the count, the page and its message counts agree
    count, tasks = await store.find_tasks(
        session,
        project_id,
        name=name,
        statuses=statuses,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        offset=offset,
        sort=sort,
    )
    counts = await store.message_counts(session, project_id, [t.id for t in tasks])
    return {
        "count": count,
        "items": [task_item(t, counts.get(t.id, {})) for t in tasks],
    }
