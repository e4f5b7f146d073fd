"""A send task's settings: the message fields it gives every row, and their checks.

A task's settings are checked as a message's would be, before any file is read, so a task
that could create no message is refused at once. The channels they name decide which
columns of the file address each row's person.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictBool, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain import spreadsheets as sheets
from herald.errors import InvalidRequest, ValidationFailed
from herald.schemas.messages import CreateMessagesIn, Scalar, WireModel, pydantic_code
from herald.services.bots.chat_sessions import messenger_channel
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.messages.plans import ADDRESS_FIELD, SUPPORTED_CHANNELS
from herald.services.problems import Problems
from herald.services.templates.resource import load_template
from herald.store.tasks import Task

# A task without a template (and without its own text) sends each row's own text.
ROW_TEXT = "{{ text }}"
# Where create_messages places a problem of one destination (one row) of a task's message.
DEST_PATH = re.compile(r"^messages\[0\]\.destinations\[(\d+)\]")


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
    """TWIN's update-task body: every field optional, only those given change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_time_ranges: list[list[str]] | None = Field(default=None, alias="allowedTimeRanges")
    template_id: str | None = Field(default=None, alias="templateId")
    settings: TaskSettings | None = None
    policy: Literal["reject_all", "send_valid"] | None = None
    default_region: str | None = Field(default=None, alias="defaultRegion")


def _inner(ctx: dict[str, Any] | None) -> list[str]:
    # Where inside the model a whole-model check found its problem (herald.schemas.text).
    field = str((ctx or {}).get("field", ""))
    return [field] if field else []


def bulk_settings(raw: str | None) -> TaskSettings:
    """The ``settings`` form field of a bulk send (JSON), read as a task's settings."""
    if not raw:
        return TaskSettings()
    try:
        return TaskSettings.model_validate(json.loads(raw))
    except json.JSONDecodeError as e:
        raise InvalidRequest("'settings' must be a JSON object.", code="malformed_json") from e
    except ValidationError as e:
        errors = [
            {
                "path": ".".join(
                    ["settings", *(str(p) for p in err["loc"]), *_inner(err.get("ctx"))]
                ),
                "message": err["msg"],
                "code": pydantic_code(err["type"]),
            }
            for err in e.errors()
        ]
        # Not Problems' 422: this one has always named only the first problem and its code.
        raise ValidationFailed(
            f"{errors[0]['path']}: {errors[0]['message']}",
            code=errors[0]["code"],
            details={"errors": errors},
        ) from e


def settings_dict(settings: TaskSettings, ranges: list[list[str]] | None) -> dict[str, Any]:
    """The settings as stored (TWIN names), with the task's own allowed time ranges."""
    data = settings.model_dump(by_alias=True, exclude_none=True)
    if ranges is not None:
        data["allowedTimeRanges"] = ranges
    return data


def with_row_text(template_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
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


def without_row_text(data: dict[str, Any]) -> dict[str, Any]:
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


def check_region(region: str | None) -> str | None:
    """The default region in upper case, or a 422 if it is not a two-letter region."""
    if region is None:
        return None
    if not sheets.valid_region(region):
        raise ValidationFailed(
            f"defaultRegion: {region!r} is not a two-letter region code such as US or RU.",
            code="invalid_region",
        )
    return region.upper()


async def check_settings(
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
        Problems(
            items=[
                {
                    "path": "settings." + ".".join(str(p) for p in err["loc"][2:]),
                    "message": err["msg"],
                    "code": pydantic_code(err["type"]),
                }
                for err in e.errors()
            ]
        ).raise_if_any()
        raise  # pydantic reports at least one error; never reached
    try:
        await create_messages(session, project_id, probe, now=now, policy=policy)
    except ValidationFailed as e:
        Problems(
            items=[
                {**item, "path": settings_path(item["path"])}
                for item in e.details.get("errors", [])
                if not DEST_PATH.match(item["path"])
            ]
        ).raise_if_any()


def settings_path(path: str) -> str:
    """A path in the probe message as a path in the task's body (``settings.…``)."""
    rest = path.removeprefix("messages[0]").lstrip(".")
    return rest if rest == "templateId" else f"settings.{rest}".rstrip(".")
