"""Send tasks: a CSV or XLSX file of recipients and variables, turned into messages in bulk.

Life of a task::

    draft ──upload──▶ importing ──▶ ready ──start──▶ running ⇄ paused
                          │                            │
                          └──────(bulk: start at once)─┘──▶ done
    any of them ──cancel──▶ cancelled;  a file or settings problem ──▶ failed

Rows become messages through ``create_messages`` (the one way messages are made), a batch per
transaction together with their ``TaskRow``s and the task's counters. The import streams the
stored file and skips rows already stored, so it can stop anywhere and resume without losing
or repeating a row. Until a task is started its messages are held: their deliveries have no
``next_attempt_at``, which is also how pause works. The dispatcher knows nothing of tasks.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, cast

from pydantic import Field, StrictBool, ValidationError
from sqlalchemy import Table, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald.bootstrap import Herald
from herald.config import Settings
from herald.domain import spreadsheets as sheets
from herald.domain.statuses import FINAL, Status
from herald.errors import Conflict, NotFound, UnsupportedMediaType, ValidationFailed
from herald.schemas.messages import (
    CancelMessagesIn,
    CreateMessagesIn,
    Scalar,
    WireModel,
    pydantic_code,
)
from herald.services.bots.chat_sessions import messenger_channel
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.messages.plans import ADDRESS_FIELD, SUPPORTED_CHANNELS
from herald.services.messages.reading import cancel_messages
from herald.services.templates.resource import load_template
from herald.store.base import UTCDateTime, new_id
from herald.store.db import is_postgres, read_snapshot
from herald.store.messages import Delivery, Message
from herald.store.tasks import Task, TaskRow, settle_tasks

TaskStatus = Literal[
    "draft", "importing", "ready", "running", "paused", "cancelled", "done", "failed"
]
ENDED = ("cancelled", "done", "failed")
# Statuses in which the file is still being turned into messages (when imported_at is unset).
IMPORTING = ("importing", "running", "paused")
HELD = (Status.QUEUED.value, Status.SCHEDULED.value)
# Statuses after which nothing more happens to a message as far as a task is concerned
# (a delivered SMS may still be read, but it is no longer work in progress).
PROCESSED = frozenset({*FINAL, Status.DELIVERED, Status.READ})
# A task without a template (and without its own text) sends each row's own text.
ROW_TEXT = "{{ text }}"
TASK_ROWS = cast(Table, TaskRow.__table__)
DEST_PATH = re.compile(r"^messages\[0\]\.destinations\[(\d+)\]")


# --------------------------------------------------------------------------- requests


class TaskSettings(WireModel):
    """The message fields a task gives every message it creates (TWIN names)."""

    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, alias="callbackUrl")
    callback_data: str | None = Field(default=None, alias="callbackData")
    group_id: str | None = Field(default=None, alias="groupId", max_length=100)
    use_short_links: StrictBool | None = Field(default=None, alias="useShortLinks")
    allowed_time_ranges: list[list[str]] | None = Field(default=None, alias="allowedTimeRanges")
    send_at: Any = Field(default=None, alias="sendAt")
    timezone: str | None = Field(default=None, max_length=64)
    variables: dict[str, Scalar] | None = None


class CreateTaskIn(WireModel):
    """TWIN's create-task body (``name``, ``allowedTimeRanges``) plus Herald's fields."""

    name: str = Field(min_length=1, max_length=200)
    allowed_time_ranges: list[list[str]] | None = Field(default=None, alias="allowedTimeRanges")
    template_id: str | None = Field(default=None, alias="templateId")
    settings: TaskSettings = Field(default_factory=TaskSettings)
    policy: Literal["reject_all", "send_valid"] = "send_valid"
    default_region: str | None = Field(default=None, alias="defaultRegion")


class UpdateTaskIn(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_time_ranges: list[list[str]] | None = Field(default=None, alias="allowedTimeRanges")
    template_id: str | None = Field(default=None, alias="templateId")
    settings: TaskSettings | None = None
    policy: Literal["reject_all", "send_valid"] | None = None
    default_region: str | None = Field(default=None, alias="defaultRegion")


# --------------------------------------------------------------------------- helpers


def _not_found(task_id: str) -> NotFound:
    return NotFound(f"No task with id {task_id}.", code="task_not_found")


async def find_task(
    session: AsyncSession, project_id: str, task_id: str, *, lock: bool = False
) -> Task:
    query = select(Task).where(Task.id == task_id, Task.project_id == project_id)
    if lock and is_postgres(session):
        query = query.with_for_update()
    task = await session.scalar(query)
    if task is None:
        raise _not_found(task_id)
    return task


def task_dir(settings: Settings, task_id: str) -> Path:
    return settings.data_dir / "tasks" / task_id


def task_file(settings: Settings, task: Task) -> Path:
    return task_dir(settings, task.id) / f"upload.{task.file_format}"


def _settings_dict(settings: TaskSettings, ranges: list[list[str]] | None) -> dict[str, Any]:
    data = settings.model_dump(by_alias=True, exclude_none=True)
    if ranges is not None:
        data["allowedTimeRanges"] = ranges
    return data


def _with_row_text(template_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """Without a template, every channel without its own text sends the row's ``text``
    column; a task that names no channel sends SMS."""
    channels = {k.lower(): dict(v) for k, v in data.get("channels", {}).items()}
    if not template_id:
        if not channels:
            channels["sms"] = {}
        for content in channels.values():
            if not content.get("text"):
                content["text"] = ROW_TEXT
    return {**data, "channels": channels}


def _without_row_text(data: dict[str, Any]) -> dict[str, Any]:
    """Stored settings without the ``{{ text }}`` a task without a template was given."""
    channels = {k: dict(v) for k, v in data.get("channels", {}).items()}
    for content in channels.values():
        if content.get("text") == ROW_TEXT:
            del content["text"]
    if channels == {"sms": {}}:
        channels = {}  # the SMS channel only added for lack of any other
    return {**data, "channels": channels}


async def task_channels(session: AsyncSession, task: Task) -> dict[str, dict[str, Any]]:
    """The channels the task's messages go out on, in cascade order, each with its content.

    As for a message: the task's own channels if it names any, else the template's; the
    task's fields override the template's.
    """
    template: dict[str, Any] = {}
    if task.template_id:
        template = (await load_template(session, task.project_id, task.template_id)).channels
    own = {k.lower(): v for k, v in task.settings.get("channels", {}).items()}
    keys = list(own) or [k for k in template if k in SUPPORTED_CHANNELS]
    return {k: {**template.get(k, {}), **own.get(k, {})} for k in keys}


def destination_columns(channels: dict[str, dict[str, Any]]) -> list[str]:
    """The spreadsheet columns that address a row's person on the channels, in order."""
    columns: list[str] = []
    for key, content in channels.items():
        for column in _columns_of(key, content):
            if column not in columns:
                columns.append(column)
    return columns


def _columns_of(channel: str, content: dict[str, Any]) -> list[str]:
    if channel != "chat":
        return [ADDRESS_FIELD[channel]] if channel in ADDRESS_FIELD else []
    # A chat session goes out on the messenger the task names, else on whichever the
    # person can be reached on (the web chat or Telegram by id, WhatsApp or SMS by phone).
    messenger = messenger_channel(str(content.get("messengerType") or ""))
    if messenger is not None:
        return [ADDRESS_FIELD[messenger]]
    return ["messengerUserId", "phone"]


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    if not sheets.valid_region(region):
        raise ValidationFailed(
            f"defaultRegion: {region!r} is not a two-letter region code such as US or RU.",
            code="invalid_region",
        )
    return region.upper()


async def _check_settings(
    session: AsyncSession,
    project_id: str,
    template_id: str | None,
    data: dict[str, Any],
    *,
    now: datetime,
    policy: CreationPolicy,
) -> None:
    """Refuse settings no message could be created with, before any file is read.

    The probe message has a destination with no phone, so ``create_messages`` always
    refuses it and stores nothing; every other problem it reports is the task's own.
    """
    try:
        probe = CreateMessagesIn.model_validate(
            {"messages": [{**data, "templateId": template_id, "destinations": [{}]}]}
        )
    except ValidationError as e:
        errors = [
            {
                "path": "settings." + ".".join(str(p) for p in err["loc"][2:]),
                "message": err["msg"],
                "code": pydantic_code(err["type"]),
            }
            for err in e.errors()
        ]
        raise _failed(errors) from e
    try:
        await create_messages(session, project_id, probe, now=now, policy=policy)
    except ValidationFailed as e:
        errors = [
            {**item, "path": settings_path(item["path"])}
            for item in e.details.get("errors", [])
            if not DEST_PATH.match(item["path"])
        ]
        if errors:
            raise _failed(errors) from e


def settings_path(path: str) -> str:
    rest = path.removeprefix("messages[0]").lstrip(".")
    return rest if rest == "templateId" else f"settings.{rest}".rstrip(".")


def _failed(errors: list[dict[str, str]]) -> ValidationFailed:
    first = errors[0]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ValidationFailed(
        f"{first['path']}: {first['message']}{more}",
        code=first["code"] if len(errors) == 1 else "validation_failed",
        details={"errors": errors},
    )


# --------------------------------------------------------------------------- create / update


async def create_task(
    session: AsyncSession,
    project_id: str,
    request: CreateTaskIn,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> Task:
    """A draft task, its settings checked as a message would be."""
    region = _check_region(request.default_region)
    data = _with_row_text(
        request.template_id, _settings_dict(request.settings, request.allowed_time_ranges)
    )
    await _check_settings(session, project_id, request.template_id, data, now=now, policy=policy)
    task = Task(
        project_id=project_id,
        name=request.name,
        status="draft",
        template_id=request.template_id,
        settings=data,
        policy=request.policy,
        default_region=region,
        rows_read=0,
        rows_accepted=0,
        rows_rejected=0,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    return task


async def update_task(
    session: AsyncSession,
    project_id: str,
    task_id: str,
    request: UpdateTaskIn,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> None:
    """Rename any time; change what messages will be like only before the file is imported."""
    task = await find_task(session, project_id, task_id, lock=True)
    changes_messages = request.model_fields_set - {"name"}
    if changes_messages and task.status != "draft":
        raise Conflict(
            f"The task is {task.status}; only its name can change once a file is uploaded.",
            code="task_not_editable",
        )
    if request.name is not None:
        task.name = request.name
    if changes_messages:
        template_id = (
            request.template_id if "template_id" in request.model_fields_set else task.template_id
        )
        if request.settings is not None:
            data = request.settings.model_dump(by_alias=True, exclude_none=True)
        else:
            data = _without_row_text(task.settings)
        if request.allowed_time_ranges is not None:
            data["allowedTimeRanges"] = request.allowed_time_ranges
        data = _with_row_text(template_id, data)
        await _check_settings(session, project_id, template_id, data, now=now, policy=policy)
        task.template_id = template_id
        task.settings = data
        if request.policy is not None:
            task.policy = request.policy
        if "default_region" in request.model_fields_set:
            task.default_region = _check_region(request.default_region)
    task.updated_at = now


# --------------------------------------------------------------------------- upload


def _save(source: IO[bytes], target: Path) -> bytes:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    with target.open("rb") as f:
        return f.read(8192)


async def attach_file(
    herald: Herald,
    project_id: str,
    task_id: str,
    source: IO[bytes],
    file_name: str | None,
    *,
    start: bool = False,
) -> None:
    """Store the uploaded file beside the task and mark the task for import.

    The file is written and synced to disk before the task says ``importing``, so a
    crash right after leaves either a draft or an importable task.
    """
    async with herald.sessions() as session:
        task = await find_task(session, project_id, task_id)
    if task.status != "draft":
        raise Conflict(
            f"The task is {task.status} and already has a file; create a new task "
            "for another file.",
            code="task_has_file",
        )
    staging = task_dir(herald.settings, task_id) / f"incoming-{new_id()}"
    head = await asyncio.to_thread(_save, source, staging)
    try:
        fmt = sheets.file_format(file_name, head)
    except sheets.SpreadsheetProblem as e:
        staging.unlink(missing_ok=True)
        raise UnsupportedMediaType(
            e.message, code=e.code, details={"accepted": list(sheets.FORMATS)}
        ) from e
    target = task_dir(herald.settings, task_id) / f"upload.{fmt}"
    staging.replace(target)
    now = herald.clock.now()
    async with herald.sessions() as session, session.begin():
        task = await find_task(session, project_id, task_id, lock=True)
        if task.status != "draft":
            raise Conflict(
                f"The task is {task.status} and already has a file.", code="task_has_file"
            )
        task.file_name = (file_name or f"upload.{fmt}")[:255]
        task.file_format = fmt
        task.status = "running" if start else "importing"
        if start:
            task.started_at = now
        task.updated_at = now


# --------------------------------------------------------------------------- control


async def _release(session: AsyncSession, project_id: str, task_id: str, now: datetime) -> None:
    """Give held deliveries a due time again; the dispatcher re-applies allowed time ranges and
    validity when it claims them."""
    due = (
        select(func.coalesce(Message.send_at, literal(now, UTCDateTime())))
        .where(Message.id == Delivery.message_id)
        .scalar_subquery()
    )
    await session.execute(
        update(Delivery)
        .where(
            Delivery.message_id.in_(
                select(Message.id).where(
                    Message.project_id == project_id, Message.task_id == task_id
                )
            ),
            Delivery.status.in_(HELD),
            Delivery.next_attempt_at.is_(None),
        )
        .values(next_attempt_at=due)
        .execution_options(synchronize_session=False)
    )


async def _hold_task(session: AsyncSession, project_id: str, task_id: str) -> None:
    await session.execute(
        update(Delivery)
        .where(
            Delivery.message_id.in_(
                select(Message.id).where(
                    Message.project_id == project_id, Message.task_id == task_id
                )
            ),
            Delivery.status.in_(HELD),
        )
        .values(next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


async def start_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Let the task's messages go (TWIN ``POST startedTasks/{id}``)."""
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "running":
        return
    if task.status not in ("importing", "ready"):
        raise Conflict(
            f"The task is {task.status}; only an imported (or importing) task can be started"
            + (" — upload its file first." if task.status == "draft" else "."),
            code="task_not_startable",
        )
    task.status = "running"
    task.started_at = task.updated_at = now
    await _release(session, project_id, task_id, now)
    await settle_tasks(session, [(project_id, task_id)])  # nothing left to send: done now


async def pause_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Hold every message of the task not yet handed to a provider.

    A task without a file (TWIN's SDK creates one with only a name and sends messages with
    its ``taskId``) can be paused too: its messages wait until it is resumed.
    """
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "paused":
        return
    if task.status != "running" and not (task.status == "draft" and task.file_format is None):
        raise Conflict(
            f"The task is {task.status}; only a running task, or one without a file yet, "
            "can be paused.",
            code="task_not_running",
        )
    task.status = "paused"
    task.updated_at = now
    await _hold_task(session, project_id, task_id)


async def resume_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "running":
        return
    if task.status != "paused":
        raise Conflict(
            f"The task is {task.status}; only a paused task can be resumed.",
            code="task_not_paused",
        )
    # A task paused before it had a file goes back to taking one.
    task.status = "running" if task.started_at else "draft"
    task.updated_at = now
    await _release(session, project_id, task_id, now)
    await settle_tasks(session, [(project_id, task_id)])


async def cancel_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> int:
    """Cancel every message not yet sent; sent ones are untouched. Returns how many."""
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status in ENDED:
        raise Conflict(f"The task is already {task.status}.", code="task_ended")
    await session.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(status="cancelled", updated_at=now, finished_at=now)
    )
    results = await cancel_messages(session, project_id, CancelMessagesIn(task_id=task_id), now=now)
    return sum(1 for r in results if r["error"] is None and r["status"] == Status.CANCELLED)


async def delete_task(
    session: AsyncSession, settings: Settings, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Cancel what is not sent yet, then forget the task, its rows and its file.

    The messages stay, like any message's history.
    """
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status not in ENDED:
        await cancel_messages(session, project_id, CancelMessagesIn(task_id=task_id), now=now)
    await session.execute(delete(TaskRow).where(TaskRow.task_id == task_id))
    await session.execute(delete(Task).where(Task.id == task_id))
    directory = task_dir(settings, task_id)
    await asyncio.to_thread(shutil.rmtree, directory, True)


# --------------------------------------------------------------------------- reading


async def _message_counts(
    session: AsyncSession, project_id: str, task_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    rows = await session.execute(
        select(Message.task_id, Message.status, func.count())
        .where(Message.project_id == project_id, Message.task_id.in_(task_ids))
        .group_by(Message.task_id, Message.status)
    )
    out: dict[str, dict[str, int]] = {}
    for task_id, status, count in rows:
        out.setdefault(task_id or "", {})[status] = count
    return out


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
    counts = (await _message_counts(session, project_id, [task_id])).get(task_id, {})
    return task_item(task, counts)


async def task_status(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> dict[str, Any]:
    """TWIN's ``{"status"}`` plus counts per message status, the rate and an ETA."""
    item = await get_task(session, project_id, task_id, now=now)
    window = timedelta(seconds=60)
    sent_recently = (
        await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.project_id == project_id,
                Message.task_id == task_id,
                Message.sent_at >= now - window,
            )
        )
        or 0
    )
    task = await find_task(session, project_id, task_id)
    since = max(task.started_at or now, now - window)
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
    query = select(Task).where(Task.project_id == project_id)
    if name:
        query = query.where(Task.name.contains(name))
    if statuses:
        query = query.where(Task.status.in_(statuses))
    if created_from:
        query = query.where(Task.created_at >= created_from)
    if created_to:
        query = query.where(Task.created_at < created_to)
    count = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    tasks = list(
        await session.scalars(query.order_by(*_task_order(sort)).limit(limit).offset(offset))
    )
    counts = await _message_counts(session, project_id, [t.id for t in tasks])
    return {
        "count": count,
        "items": [task_item(t, counts.get(t.id, {})) for t in tasks],
    }


# TWIN's sort keys for the task list, as columns.
SORT_KEYS = {"createdAt": Task.created_at, "status": Task.status}


def _task_order(sort: tuple[str, bool]) -> list[Any]:
    key, descending = sort
    column = SORT_KEYS[key]
    # Newest first within a status; the id keeps equal times in one order from page to page.
    return [column.desc() if descending else column.asc(), Task.created_at.desc(), Task.id.desc()]


async def import_outcome(session: AsyncSession, project_id: str, task_id: str) -> None:
    """After a synchronous import: a task the import failed is the request's error."""
    task = await find_task(session, project_id, task_id)
    if task.status == "failed" and task.error:
        raise ValidationFailed(
            task.error,
            code=task.error_code or "import_failed",
            details={"taskId": task.id, "rowsRejected": task.rows_rejected},
        )
