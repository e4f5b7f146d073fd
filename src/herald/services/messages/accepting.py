"""Accepting messages: validate a whole request, plan each message's cascade, store it.

Which channels start at once and how long each may wait is the cascade's rule
(:mod:`herald.domain.cascade`); this module checks the request and builds the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import Settings
from herald.domain import cascade
from herald.domain.allowed_time_ranges import InvalidTimeRange, TimeRange, parse_ranges
from herald.domain.scheduling import InvalidSchedule, first_due, parse_send_at, validity_end
from herald.domain.statuses import Status
from herald.domain.templates import DEFAULT_BUDGET, RenderBudget, TemplateTooExpensive
from herald.domain.timezones import InvalidTimeZone, load_zone, resolve_zone
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.schemas.messages import (
    CreateMessagesIn,
    MessageIn,
)
from herald.services.bots.chat_sessions import open_chat_sessions
from herald.services.messages.plans import (
    Recipient,
    Step,
    channel_specs,
    recipient_for,
    resolve_steps,
)
from herald.services.problems import Problems
from herald.services.senders import SenderDirectory
from herald.services.short_links import (
    LinkBatch,
    replace_codes,
    retention_of,
    save_short_links_many,
    short_link_base,
)
from herald.services.templates.rendering import TemplateSnapshot, budget_from_settings, off_loop
from herald.services.templates.resource import load_template
from herald.services.url_checks import url_problem
from herald.store.base import new_id
from herald.store.bulk import insert_many
from herald.store.db import is_postgres
from herald.store.messages import Delivery, Message, StatusEvent
from herald.store.projects import Project
from herald.store.tasks import Task


def _check_callback_url(url: str | None, path: str, problems: Problems, urls: UrlPolicy) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(
            f"{path}.callbackUrl",
            "'callbackUrl' must be an absolute http(s) URL.",
            "invalid_callback_url",
        )
    elif (refused := url_problem(urls, url, "callbackUrl")) is not None:
        problems.add(f"{path}.callbackUrl", refused, "url_not_allowed")


@dataclass(frozen=True, slots=True)
class _Timing:
    send_at: datetime | None
    ranges: list[TimeRange]
    raw_ranges: list[list[str]] | None
    explicit_zone: str | None


def _timing(
    msg: MessageIn, path: str, problems: Problems, *, now: datetime, horizon: timedelta
) -> _Timing | None:
    """sendAt, allowedTimeRanges and timezone of one message, checked."""
    ok = True
    send_at = None
    try:
        send_at = parse_send_at(msg.send_at, now=now, horizon=horizon)
    except InvalidSchedule as e:
        problems.add(f"{path}.sendAt", f"{e}.", e.code)
        ok = False
    ranges: list[TimeRange] = []
    if msg.allowed_time_ranges:
        try:
            ranges = parse_ranges(msg.allowed_time_ranges)
        except InvalidTimeRange as e:
            problems.add(f"{path}.allowedTimeRanges", f"{e}.", "invalid_time_ranges")
            ok = False
    if msg.timezone:
        try:
            load_zone(msg.timezone)
        except InvalidTimeZone as e:
            problems.add(f"{path}.timezone", f"{e}.", "invalid_timezone")
            ok = False
    if not ok:
        return None
    return _Timing(send_at, ranges, msg.allowed_time_ranges or None, msg.timezone)


def _validities(
    steps: list[Step], path: str, problems: Problems, default_minutes: int
) -> list[int | None]:
    """Each channel's validity, checked; a channel the cascade may leave waits a default."""
    for step in steps:
        if step.spec.validity_period is not None:
            try:
                validity_end(datetime.now(UTC), step.spec.validity_period)
            except InvalidSchedule as e:
                problems.add(f"{path}.channels.{step.channel}.validityPeriod", f"{e}.", e.code)
    return cascade.validities(
        [s.spec.validity_period for s in steps],
        [bool(s.spec.required) for s in steps],
        default_minutes,
    )


@dataclass(frozen=True, slots=True)
class CreationPolicy:
    """Installation settings that shape how messages are accepted."""

    horizon: timedelta = timedelta(days=35)
    default_timezone: str = "UTC"
    short_link_base: str = "http://127.0.0.1:8000"
    link_retention: timedelta | None = timedelta(days=90)
    # How long a channel that is not the cascade's last waits for a delivery report when the
    # request gives it no validityPeriod.
    cascade_wait_minutes: int = 60
    allowed_time_ranges_pause_validity: bool = False
    # Which private hosts callbackUrl may name (none unless the installation says so).
    urls: UrlPolicy = PUBLIC_ONLY
    # What one render of a message's text may spend.
    render_budget: RenderBudget = DEFAULT_BUDGET

    @classmethod
    def from_settings(cls, settings: Settings) -> CreationPolicy:
        return cls(
            horizon=timedelta(days=settings.schedule_horizon_days),
            default_timezone=settings.default_timezone,
            short_link_base=short_link_base(settings),
            link_retention=retention_of(settings),
            cascade_wait_minutes=settings.cascade_wait_minutes,
            allowed_time_ranges_pause_validity=settings.allowed_time_ranges_pause_validity,
            urls=settings.url_policy,
            render_budget=budget_from_settings(settings),
        )


@dataclass(slots=True)
class _Planned:
    msg: MessageIn
    template: TemplateSnapshot | None
    timing: _Timing
    steps: list[Step]
    validities: list[int | None]
    recipients: list[Recipient]


async def _template(
    session: AsyncSession, project_id: str, msg: MessageIn, path: str, problems: Problems
) -> TemplateSnapshot | None:
    if not msg.template_id:
        return None
    try:
        return await load_template(session, project_id, msg.template_id)
    except NotFound as e:
        problems.add(f"{path}.templateId", e.message, e.code)
        return None


@dataclass(slots=True)
class PlannedMessages:
    """A checked request turned into rows, ready to be stored in one short transaction."""

    rows: dict[type[Any], list[dict[str, Any]]]
    results: list[dict[str, Any]]
    link_batches: list[LinkBatch]
    opens_chat_sessions: bool
    task_id: str | None = None


async def create_messages(
    session: AsyncSession,
    project_id: str,
    request: CreateMessagesIn,
    *,
    now: datetime,
    policy: CreationPolicy | None = None,
    held: bool = False,
) -> list[dict[str, Any]]:
    """Validate the whole request, then store one message per destination, in the session's
    transaction. Nothing is stored unless every message is valid."""
    policy = policy or CreationPolicy()
    planned = await plan_messages(session, project_id, request, now=now, policy=policy, held=held)
    return await store_messages(session, project_id, planned, now=now, policy=policy)


def plans_without_writing(request: CreateMessagesIn) -> bool:
    """Whether planning only reads: a chat channel may make its bot's web chat sender."""
    return not any(key.lower() == "chat" for msg in request.messages for key in msg.channels)


async def _check_request_fields(
    session: AsyncSession, project_id: str, request: CreateMessagesIn, problems: Problems
) -> None:
    """Refuse what Herald would otherwise accept and then ignore.

    TWIN's SDK always sends ``companyId`` and ``validate``, as null when unset.
    """
    if request.company_id is not None:
        problems.add(
            "companyId",
            "Herald has no companies: the API key chooses the project. Send null or leave it out.",
            "unsupported_field",
        )
    if request.task_id is not None and (
        await session.scalar(
            select(Task.id).where(Task.id == request.task_id, Task.project_id == project_id)
        )
        is None
    ):
        problems.add("taskId", f"No task with id {request.task_id}.", "task_not_found")
    for i, msg in enumerate(request.messages):
        if msg.validate_ is not None:
            problems.add(
                f"messages[{i}].validate",
                "Herald does not support TWIN's 'validate' yet; send null or leave it out.",
                "unsupported_field",
            )
        # A chat session may go out as SMS; without channels, the template's are used.
        keys = {key.lower() for key in msg.channels}
        if msg.use_short_links and keys and not keys & {"sms", "chat"}:
            problems.add(
                f"messages[{i}].useShortLinks",
                "useShortLinks shortens the links of SMS texts, and this message has no sms "
                "channel; leave it out.",
                "unsupported_field",
            )


async def _recipients(
    msg: MessageIn,
    path: str,
    steps: list[Step],
    template: TemplateSnapshot | None,
    problems: Problems,
    policy: CreationPolicy,
) -> list[Recipient]:
    """Each destination's content, rendered off the event loop when there is anything to render."""

    def render() -> list[Recipient]:
        recipients = []
        for j, dest in enumerate(msg.destinations):
            seen = len(problems.items)
            recipient = recipient_for(
                dest,
                f"{path}.destinations[{j}]",
                msg,
                steps,
                template,
                problems,
                short_link_base=policy.short_link_base,
                budget=policy.render_budget,
            )
            if recipient is not None:
                recipients.append(recipient)
            elif any(p["code"] == TemplateTooExpensive.code for p in problems.items[seen:]):
                # The request is refused anyway, and each other destination's render could
                # spend as much again.
                break
        return recipients

    renders = (
        template is not None or bool(msg.variables) or any(d.variables for d in msg.destinations)
    )
    if not renders:  # literal texts: no thread hop
        return render()
    return await off_loop(render)


async def plan_messages(
    session: AsyncSession,
    project_id: str,
    request: CreateMessagesIn,
    *,
    now: datetime,
    policy: CreationPolicy,
    held: bool = False,
) -> PlannedMessages:
    """Check the whole request and build its rows; only reads if ``plans_without_writing``.

    Each message is a cascade over its channels (in request order); the first channel a
    recipient has an address for (and every ``required`` one) is due at sendAt or now, moved
    to the recipient's next allowed time; the others wait as ``pending`` for the cascade.
    Texts are rendered from the template with the destination's variables and shortened
    before segments are counted. Raises ValidationFailed naming every problem found.
    ``held`` makes the deliveries without a due time (a send task not started yet).
    """
    problems = Problems()
    await _check_request_fields(session, project_id, request, problems)
    settings = (
        await session.execute(
            select(Project.default_timezone, Project.provider_aliases, Project.callback_url).where(
                Project.id == project_id
            )
        )
    ).first()
    project_zone = (settings[0] if settings else None) or policy.default_timezone
    aliases: dict[str, str] = (settings[1] if settings else None) or {}
    default_callback_url: str | None = settings[2] if settings else None
    senders = SenderDirectory(session, project_id)
    bulk_id = request.bulk_id or new_id()
    plans: list[_Planned] = []
    for i, msg in enumerate(request.messages):
        path = f"messages[{i}]"
        _check_callback_url(msg.callback_url, path, problems, policy.urls)
        template = await _template(session, project_id, msg, path, problems)
        if msg.template_id and template is None:
            continue
        specs = channel_specs(msg, template, path, problems)
        if template is not None and not msg.allowed_time_ranges and template.allowed_time_ranges:
            msg = msg.model_copy(update={"allowed_time_ranges": template.allowed_time_ranges})
        timing = _timing(msg, path, problems, now=now, horizon=policy.horizon)
        steps = await resolve_steps(specs, senders, path, problems, msg.destinations, aliases)
        if timing is None or not steps or len(steps) != len(specs):
            continue
        validities = _validities(steps, path, problems, policy.cascade_wait_minutes)
        recipients = await _recipients(msg, path, steps, template, problems, policy)
        plans.append(_Planned(msg, template, timing, steps, validities, recipients))
    problems.raise_if_any()

    rows: dict[type[Any], list[dict[str, Any]]] = {Message: [], Delivery: [], StatusEvent: []}
    results: list[dict[str, Any]] = []
    link_batches: list[LinkBatch] = []
    for plan in plans:
        group_id = plan.msg.group_id or new_id()
        channels = {
            s.channel: s.spec.model_dump(by_alias=True, exclude_none=True) for s in plan.steps
        }
        for recipient in plan.recipients:
            message_id = new_id()
            status = _store_recipient(
                rows,
                plan,
                recipient,
                message_id,
                project_id,
                project_zone,
                now=now,
                pause_validity=policy.allowed_time_ranges_pause_validity,
                held=held,
            )
            first = recipient.contents[0].step.channel
            rows[Message].append(
                {
                    "id": message_id,
                    "project_id": project_id,
                    "bulk_id": bulk_id,
                    "group_id": group_id,
                    "group_given": plan.msg.group_id is not None,
                    "task_id": request.task_id,
                    "phone": recipient.phone,
                    "destination": recipient.destination,
                    "channels": channels,
                    "channel": first,
                    "status": status.value,
                    "status_at": now,
                    # The project's default was checked when it was set.
                    "callback_url": plan.msg.callback_url or default_callback_url,
                    "callback_data": plan.msg.callback_data,
                    "send_at": plan.timing.send_at,
                    "timezone": None,
                    "timezone_source": None,
                    "allowed_time_ranges": plan.timing.raw_ranges,
                    "template_id": plan.template.id if plan.template else None,
                    "template_version": plan.template.version if plan.template else None,
                    "template_variables": recipient.variables or None,
                    "created_at": now,
                }
            )
            zone = resolve_zone(plan.timing.explicit_zone, recipient.phone, project_zone)
            rows[Message][-1].update(timezone=zone.name, timezone_source=zone.source)
            for content in recipient.contents:
                if content.links:
                    link_batches.append(LinkBatch(message_id, request.task_id, content.links))
            results.append(
                {
                    "id": message_id,
                    "bulkId": bulk_id,
                    "groupId": group_id,
                    "flowId": group_id,
                    "status": status.value,
                    "channel": first,
                    "error": None,
                }
            )
    return PlannedMessages(
        rows,
        results,
        link_batches,
        any(s.bot_id for plan in plans for s in plan.steps),
        request.task_id,
    )


async def store_messages(
    session: AsyncSession,
    project_id: str,
    planned: PlannedMessages,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> list[dict[str, Any]]:
    """Store planned messages in the session's (write) transaction; returns TWIN's results."""
    rows = planned.rows
    if planned.task_id is not None and await _task_holds(session, project_id, planned.task_id):
        for row in rows[Delivery]:
            row["next_attempt_at"] = None  # released when the task is started or resumed
    if planned.link_batches:
        renamed = await save_short_links_many(
            session, project_id, planned.link_batches, now=now, retention=policy.link_retention
        )
        if renamed:
            # A code was taken meanwhile: the text must carry the code actually stored.
            for row in rows[Delivery]:
                row["body"] = replace_codes(row["body"], policy.short_link_base, renamed)
    # Core executemany on the tables, parents first: the ORM's bulk path (``insert(Model)``)
    # costs more per row than the row itself, and an import sends hundreds of thousands.
    connection = await session.connection()
    for model in (Message, Delivery, StatusEvent):
        await insert_many(connection, cast(Table, model.__table__), rows[model])
    if planned.opens_chat_sessions:
        await open_chat_sessions(session, rows[Delivery])
    return planned.results


async def _task_holds(session: AsyncSession, project_id: str, task_id: str) -> bool:
    """Whether messages joining the task wait for it (paused, or not started yet).

    Read in the storing transaction and shared-locked, so a pause either comes first and
    holds these messages, or comes after and holds them with the task's others.
    """
    query = select(Task.status).where(Task.id == task_id, Task.project_id == project_id)
    if is_postgres(session):
        query = query.with_for_update(read=True)
    status = await session.scalar(query)
    if status is None:
        raise ValidationFailed(f"taskId: No task with id {task_id}.", code="task_not_found")
    if status in ("cancelled", "done", "failed"):
        raise Conflict(
            f"Task {task_id} is {status} and takes no more messages; send them without "
            "'taskId', or with the id of an open task.",
            code="task_not_open",
            details={"taskId": task_id, "status": status},
        )
    return status in ("paused", "importing", "ready")


def _store_recipient(
    rows: dict[type[Any], list[dict[str, Any]]],
    plan: _Planned,
    recipient: Recipient,
    message_id: str,
    project_id: str,
    project_zone: str,
    *,
    now: datetime,
    pause_validity: bool = False,
    held: bool = False,
) -> Status:
    """Delivery and history rows for one recipient; returns the message's first status."""
    timing = plan.timing
    earliest = timing.send_at or now
    zone = resolve_zone(timing.explicit_zone, recipient.phone, project_zone)
    first_status: Status | None = None
    starting = cascade.starts_at_once([bool(c.step.spec.required) for c in recipient.contents])
    for step_no, (content, active) in enumerate(zip(recipient.contents, starting, strict=True)):
        validity = plan.validities[content.index]
        delivery_id = new_id()
        status, due_at, expires_at, detail = Status.PENDING, None, None, None
        if active:
            if pause_validity:
                due = first_due(earliest, timing.ranges, zone.zone, None)
                expires_at = validity_end(due.at, validity)
            else:
                expires_at = validity_end(earliest, validity)
                due = first_due(earliest, timing.ranges, zone.zone, expires_at)
            due_at = due.at
            status = Status.SCHEDULED if due.at > now else Status.QUEUED
            if due.held_outside_allowed_ranges:
                local = due.at.astimezone(zone.zone)
                detail = (
                    f"outside the allowed hours; due {local:%Y-%m-%d %H:%M} "
                    f"{zone.name} ({zone.source} time zone)"
                )
            first_status = first_status or status
        rows[Delivery].append(
            {
                "id": delivery_id,
                "message_id": message_id,
                "project_id": project_id,
                "channel": content.step.channel,
                "sender_id": content.step.sender.id,
                "to_address": content.address,
                "from_address": content.step.sender.from_address,
                "body": content.body,
                "content": content.content,
                "step": step_no,
                "required": bool(content.step.spec.required),
                "validity_minutes": validity,
                "status": status.value,
                "next_attempt_at": None if held else due_at,
                "expires_at": expires_at,
                "attempt_count": 0,
                "num_segments": content.segments,
                "created_at": now,
                "updated_at": now,
            }
        )
        rows[StatusEvent].append(
            {
                "message_id": message_id,
                "delivery_id": delivery_id,
                "status": status.value,
                "source": "api",
                "detail": detail,
                "at": now,
            }
        )
    assert first_status is not None, "a recipient always has a first channel"
    return first_status
