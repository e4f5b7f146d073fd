"""Templates: validated and compile-checked when saved, versioned on every edit, rendered per send.

The seam message creation uses:

* :func:`load_template` gives a :class:`TemplateSnapshot` (one version, frozen);
* :func:`merge_variables` merges message-level and per-destination variables;
* :func:`render_channel` merges the template's channel content with the request's per-channel
  fields (the request wins per field) and renders every content field;
* :func:`template_error` turns a domain :class:`~herald.domain.templates.TemplateProblem` into
  the API's 422;
* every render has a budget (:func:`~herald.services.templates.rendering.budget_from_settings`), and
  the API's renders and compile checks run off the event loop
  (:func:`~herald.services.templates.rendering.off_loop`);
* short links: :func:`shorten_text` and :func:`save_short_links` (re-exported from
  :mod:`herald.services.short_links`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain import templates as tpl
from herald.domain.links import rewrite_urls
from herald.domain.segments import SMS_MAX_CHARACTERS, analyze, smart_encode
from herald.errors import NotFound, ValidationFailed
from herald.schemas.messages import Scalar
from herald.services.senders import SenderDirectory
from herald.services.short_links import (
    CODE_LENGTH,
    LinkBatch,
    PlannedLink,
    link_stats_for_messages,
    list_short_links,
    replace_codes,
    resolve_click,
    save_short_links,
    save_short_links_many,
    shorten_text,
)
from herald.services.templates.rendering import off_loop, with_setting
from herald.store.base import new_id
from herald.store.templates import Template, TemplateVersion

__all__ = [
    "CODE_LENGTH",
    "LinkBatch",
    "PlannedLink",
    "PreviewOptions",
    "TemplateFields",
    "TemplateSnapshot",
    "create_template",
    "delete_template",
    "get_template",
    "link_stats_for_messages",
    "list_short_links",
    "list_templates",
    "list_versions",
    "load_template",
    "merge_variables",
    "preview_content",
    "preview_template",
    "render_channel",
    "replace_codes",
    "resolve_click",
    "save_short_links",
    "save_short_links_many",
    "shorten_text",
    "template_error",
    "validate_channels",
]

MAX_NAME_LENGTH = 200
MAX_FIELD_LENGTH = 20_000
MAX_BUTTONS = 10
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
# Preview shows shortened links with this stand-in code, as long as a real one.
PLACEHOLDER_CODE = "X" * CODE_LENGTH


@dataclass(frozen=True)
class TemplateSnapshot:
    """One version of a template, as messages are rendered from it."""

    id: str
    name: str
    version: int
    channels: dict[str, dict[str, Any]]
    allowed_time_ranges: list[list[str]]


@dataclass(frozen=True)
class TemplateFields:
    """A create or update request; ``None`` means "not given" (on update: unchanged)."""

    name: str | None = None
    channels: Any = None
    allowed_time_ranges: Any = None


@dataclass
class _Problems:
    """Every problem in a request, so the client can fix them all in one go."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, path: str, message: str, code: str, **extra: Any) -> None:
        self.items.append({"path": path, "message": message, "code": code, **extra})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        codes = {item["code"] for item in self.items}
        more = f" (and {len(self.items) - 1} more problems)" if len(self.items) > 1 else ""
        details: dict[str, Any] = {"errors": self.items}
        syntax = next((i for i in self.items if "line" in i), None)
        if syntax is not None:
            details.update(field=syntax["path"], line=syntax["line"], column=syntax["column"])
        raise ValidationFailed(
            f"{first['path']}: {first['message']}{more}",
            code=codes.pop() if len(codes) == 1 else "validation_failed",
            details=details,
        )


def template_error(problem: tpl.TemplateProblem, path: str) -> ValidationFailed:
    """The API's 422 for a template problem found at ``path`` (e.g. ``channels.sms.text``)."""
    details: dict[str, Any] = {"field": path}
    line = getattr(problem, "line", None)
    if line is not None:
        details.update(line=line, column=getattr(problem, "column", None))
        where = f"{path}: line {line}, column {details['column']}: "
    else:
        where = f"{path}: "
    if isinstance(problem, tpl.MissingVariables):
        details["missing"] = problem.names
    if isinstance(problem, tpl.TemplateTooExpensive):
        details["limit"] = problem.limit
    return ValidationFailed(where + problem.message, code=problem.code, details=details)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_name(name: Any, problems: _Problems) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        problems.add(
            "name",
            f"A template needs a 'name' of 1 to {MAX_NAME_LENGTH} characters.",
            "invalid_template_name",
        )
        return ""
    return name.strip()


def _check_ranges(ranges: Any, problems: _Problems) -> list[list[str]]:
    if not isinstance(ranges, list):
        problems.add(
            "allowedTimeRanges",
            'Give a list of [from, to] pairs such as [["09:00:00", "21:00:00"]].',
            "invalid_time_range",
        )
        return []
    out: list[list[str]] = []
    for i, pair in enumerate(ranges):
        ok = isinstance(pair, list) and len(pair) == 2
        times: list[str] = []
        for value in pair if ok else []:
            m = _TIME.match(value) if isinstance(value, str) else None
            if m is None:
                ok = False
                break
            times.append(f"{m.group(1)}:{m.group(2)}:{m.group(3) or '00'}")
        if not ok:
            problems.add(
                f"allowedTimeRanges[{i}]",
                'Each range is a pair of times "HH:MM:SS" (or "HH:MM"), e.g. '
                '["09:00:00", "21:00:00"].',
                "invalid_time_range",
            )
            continue
        out.append(times)
    return out


def _check_source(source: str, path: str, problems: _Problems, *, html: bool = False) -> None:
    if len(source) > MAX_FIELD_LENGTH:
        problems.add(path, f"At most {MAX_FIELD_LENGTH} characters are allowed.", "field_too_long")
        return
    try:
        tpl.compile_check(source, html=html)
    except tpl.TemplateSyntaxProblem as e:
        problems.add(
            path,
            f"line {e.line}, column {e.column}: {e.message}",
            e.code,
            line=e.line,
            column=e.column,
        )
    except tpl.TemplateSecurityProblem as e:
        problems.add(path, e.message, e.code, line=e.line, column=e.column)
    except tpl.TemplateTooExpensive as e:
        problems.add(path, e.message, e.code)


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names.get(t, "an object") for t in types)


def _is_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a number
    return isinstance(value, types)


def _check_channel(key: str, content: Any, path: str, problems: _Problems) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        problems.add(
            path, 'A channel is an object of fields, e.g. {"text": "…"}.', "invalid_channel"
        )
        return None
    fields = tpl.CHANNEL_FIELDS[key]
    settings = tpl.SETTINGS_FIELDS[key]
    out: dict[str, Any] = {}
    for name, value in content.items():
        where = f"{path}.{name}"
        if value is None:
            continue  # TWIN clients send null for keys they were given as null
        if name in fields:
            if name in tpl.LIST_FIELDS:
                if (
                    not isinstance(value, list)
                    or len(value) > MAX_BUTTONS
                    or not all(isinstance(v, str) and v for v in value)
                ):
                    problems.add(
                        where,
                        f"'{name}' is a list of up to {MAX_BUTTONS} non-empty texts.",
                        "invalid_field",
                    )
                    continue
                for i, item in enumerate(value):
                    _check_source(item, f"{where}[{i}]", problems)
                out[name] = value
            elif not isinstance(value, str):
                problems.add(where, f"'{name}' must be a string.", "invalid_field")
            else:
                _check_source(value, where, problems, html=name in tpl.HTML_FIELDS)
                out[name] = value
        elif name in settings:
            if not _is_type(value, settings[name]):
                problems.add(
                    where, f"'{name}' must be {_type_name(settings[name])}.", "invalid_field"
                )
                continue
            out[name] = value
        else:
            allowed = ", ".join([*fields, *settings])
            problems.add(
                where,
                f"The {key} channel has no field '{name}'; its fields are: {allowed}.",
                "unknown_field",
            )
    return out


def validate_channels(
    channels: Any, *, path: str = "channels", problems: _Problems | None = None
) -> dict[str, dict[str, Any]]:
    """Channel keys known, fields known and typed, every content field compile-checked.

    Keys are lower-cased (TWIN's channel keys are case-insensitive). Raises a 422 naming every
    problem unless ``problems`` is given to collect them.
    """
    own = problems is None
    collect = problems if problems is not None else _Problems()
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(channels, dict):
        collect.add(
            path, 'Give an object of channels, e.g. {"sms": {"text": "…"}}.', "invalid_field"
        )
    else:
        for raw_key, content in channels.items():
            key = str(raw_key).lower()
            where = f"{path}.{raw_key}"
            if key not in tpl.CHANNEL_FIELDS:
                known = ", ".join(tpl.CHANNEL_FIELDS)
                collect.add(
                    where, f"Unknown channel '{raw_key}'; channels are: {known}.", "unknown_channel"
                )
                continue
            if key in out:
                collect.add(where, f"The channel '{key}' is given twice.", "duplicate_channel")
                continue
            checked = _check_channel(key, content, where, collect)
            if checked is not None:
                out[key] = checked
    if own:
        collect.raise_if_any()
    return out


# ---------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------


def _not_found(template_id: str) -> NotFound:
    return NotFound(f"No template with id {template_id}.", code="template_not_found")


async def _live(
    session: AsyncSession, project_id: str, template_id: str, *, lock: bool = False
) -> Template:
    query = select(Template).where(
        Template.id == template_id,
        Template.project_id == project_id,
        Template.deleted_at.is_(None),
    )
    if lock:
        # Serialises concurrent edits of one template on PostgreSQL (SQLite's writers already
        # take turns), so two updates never both become version n + 1.
        query = query.with_for_update()
    template = await session.scalar(query)
    if template is None:
        raise _not_found(template_id)
    return template


async def _version(session: AsyncSession, template: Template, version: int) -> TemplateVersion:
    row = await session.scalar(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == version
        )
    )
    if row is None:
        raise NotFound(
            f"Template {template.id} has no version {version}; its versions are 1 to "
            f"{template.current_version}.",
            code="template_version_not_found",
        )
    return row


def variables_in(channels: Mapping[str, Mapping[str, Any]], *, required: bool = False) -> list[str]:
    """Every variable any content field of ``channels`` uses, sorted; with ``required``, only
    those rendering cannot go without."""
    names: set[str] = set()
    read = tpl.required_variables_of if required else tpl.variables_of
    for key, content in channels.items():
        for name in tpl.CHANNEL_FIELDS.get(key, ()):
            value = content.get(name)
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if isinstance(source, str) and tpl.has_markup(source):
                    try:
                        names |= read(source, html=name in tpl.HTML_FIELDS)
                    except tpl.TemplateProblem:
                        continue  # stored before a rule tightened; rendering will say why
    return sorted(names)


def template_out(template: Template, version: TemplateVersion) -> dict[str, Any]:
    """TWIN's Template shape plus Herald's ``version``, ``currentVersion`` and ``variables``."""
    return {
        "id": template.id,
        "name": template.name,
        "channels": version.channels or {},
        "allowedTimeRanges": version.allowed_time_ranges or [],
        "createdAt": template.created_at.isoformat(),
        "updatedAt": template.updated_at.isoformat() if template.updated_at else None,
        "version": version.version,
        "currentVersion": template.current_version,
        "variables": variables_in(version.channels or {}),
    }


async def create_template(
    session: AsyncSession, project_id: str, fields: TemplateFields, *, now: datetime
) -> Template:
    """Validate and store a new template as its version 1."""
    problems = _Problems()
    name = _check_name(fields.name, problems)
    channels = await off_loop(
        lambda: validate_channels(
            {} if fields.channels is None else fields.channels, problems=problems
        )
    )
    ranges = _check_ranges(
        [] if fields.allowed_time_ranges is None else fields.allowed_time_ranges, problems
    )
    problems.raise_if_any()
    template = Template(
        id=new_id(), project_id=project_id, name=name, current_version=1, created_at=now
    )
    session.add(template)
    await session.flush()
    session.add(
        TemplateVersion(
            template_id=template.id,
            version=1,
            channels=channels,
            allowed_time_ranges=ranges,
            created_at=now,
        )
    )
    await session.flush()
    return template


async def update_template(
    session: AsyncSession,
    project_id: str,
    template_id: str,
    fields: TemplateFields,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Store the edit as a new version; fields not given keep their current value."""
    template = await _live(session, project_id, template_id, lock=True)
    current = await _version(session, template, template.current_version)
    problems = _Problems()
    name = template.name if fields.name is None else _check_name(fields.name, problems)
    channels = (
        current.channels
        if fields.channels is None
        else await off_loop(lambda: validate_channels(fields.channels, problems=problems))
    )
    ranges = (
        current.allowed_time_ranges
        if fields.allowed_time_ranges is None
        else _check_ranges(fields.allowed_time_ranges, problems)
    )
    problems.raise_if_any()
    template.name = name
    template.current_version += 1
    template.updated_at = now
    version = TemplateVersion(
        template_id=template.id,
        version=template.current_version,
        channels=channels,
        allowed_time_ranges=ranges,
        created_at=now,
    )
    session.add(version)
    await session.flush()
    return template_out(template, version)


async def delete_template(
    session: AsyncSession, project_id: str, template_id: str, *, now: datetime
) -> None:
    """Soft-delete: the template disappears from the API, its versions stay for history."""
    template = await _live(session, project_id, template_id, lock=True)
    template.deleted_at = now
    template.updated_at = now


async def get_template(
    session: AsyncSession, project_id: str, template_id: str, *, version: int | None = None
) -> dict[str, Any]:
    """A template (its current version unless ``version`` is given) in TWIN's shape."""
    template = await _live(session, project_id, template_id)
    row = await _version(session, template, version or template.current_version)
    # Listing its variables compiles every field, which a cold cache makes slow.
    return await off_loop(lambda: template_out(template, row))


async def list_templates(
    session: AsyncSession,
    project_id: str,
    *,
    name: str | None = None,
    ids: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
    sort: tuple[str, bool] = ("createdAt", True),
) -> dict[str, Any]:
    """TWIN's ``{count, items}``, newest first unless ``sort`` (a key of :data:`SORT_KEYS`,
    and whether descending) says otherwise; ``name`` matches exactly."""
    where = [Template.project_id == project_id, Template.deleted_at.is_(None)]
    if name:
        where.append(Template.name == name)
    if ids:
        where.append(Template.id.in_(list(ids)))
    count = await session.scalar(select(func.count()).select_from(Template).where(*where))
    rows = await session.execute(
        select(Template, TemplateVersion)
        .join(
            TemplateVersion,
            (TemplateVersion.template_id == Template.id)
            & (TemplateVersion.version == Template.current_version),
        )
        .where(*where)
        .order_by(Template.created_at.desc() if sort[1] else Template.created_at, Template.id)
        .limit(limit)
        .offset(offset)
    )
    pairs = list(rows)
    items = await off_loop(lambda: [template_out(t, v) for t, v in pairs])
    return {"count": count or 0, "items": items}


# TWIN's sort keys for the template list: templates have no status.
SORT_KEYS = ("createdAt",)


async def list_versions(session: AsyncSession, project_id: str, template_id: str) -> dict[str, Any]:
    """The template's versions, newest first."""
    template = await _live(session, project_id, template_id)
    rows = list(
        await session.scalars(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template.id)
            .order_by(TemplateVersion.version.desc())
        )
    )
    items = await off_loop(
        lambda: [
            {
                "version": row.version,
                "current": row.version == template.current_version,
                "createdAt": row.created_at.isoformat(),
                "variables": variables_in(row.channels or {}),
            }
            for row in rows
        ]
    )
    return {"count": len(rows), "items": items}


# ---------------------------------------------------------------------------
# The rendering seam
# ---------------------------------------------------------------------------


async def load_template(
    session: AsyncSession, project_id: str, template_id: str, *, version: int | None = None
) -> TemplateSnapshot:
    """The template's current (or given) version; 404 ``template_not_found`` if not found."""
    template = await _live(session, project_id, template_id)
    row = await _version(session, template, version or template.current_version)
    return TemplateSnapshot(
        id=template.id,
        name=template.name,
        version=row.version,
        channels=dict(row.channels or {}),
        allowed_time_ranges=list(row.allowed_time_ranges or []),
    )


def merge_variables(
    message_vars: Mapping[str, Scalar] | None, destination_vars: Mapping[str, Scalar] | None
) -> dict[str, Scalar]:
    """Message-level variables overridden by the destination's own."""
    return {**(message_vars or {}), **(destination_vars or {})}


def render_channel(
    snapshot: TemplateSnapshot | None,
    channel: str,
    overrides: Mapping[str, Any],
    variables: Mapping[str, Scalar],
    *,
    budget: tpl.RenderBudget = tpl.DEFAULT_BUDGET,
) -> dict[str, Any]:
    """One channel's content: template fields, overridden per field, every content field rendered.

    Delivery settings (``from``, ``provider``...) pass through unrendered; ``None`` in
    ``overrides`` means "not given". Raises :class:`~herald.domain.templates.MissingVariables`
    naming every variable missing across all the channel's fields (``by_field`` tells which
    field needs which), or another ``TemplateProblem`` whose ``field`` names the culprit
    (:class:`~herald.domain.templates.TemplateTooExpensive` when a field spends more than
    ``budget``). Runs on the calling thread: callers on the event loop use ``off_loop``.
    """
    key = channel.lower()
    fields = tpl.CHANNEL_FIELDS.get(key)
    if fields is None:
        raise ValueError(f"unknown channel {channel!r}")
    merged: dict[str, Any] = dict(snapshot.channels.get(key, {})) if snapshot else {}
    merged.update({name: value for name, value in overrides.items() if value is not None})
    sources: dict[str, str] = {}
    for name in fields:
        value = merged.get(name)
        if isinstance(value, str):
            sources[name] = value
        elif name in tpl.LIST_FIELDS and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    sources[f"{name}[{i}]"] = item
    try:
        rendered = tpl.render_many(sources, variables, html_fields=tpl.HTML_FIELDS, budget=budget)
    except tpl.TemplateTooExpensive as e:
        raise with_setting(e) from e
    for name in fields:
        if name in tpl.LIST_FIELDS and isinstance(merged.get(name), list):
            merged[name] = [
                rendered.get(f"{name}[{i}]", item) for i, item in enumerate(merged[name])
            ]
        elif name in rendered:
            merged[name] = rendered[name]
    return merged


# ---------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewOptions:
    variables: Mapping[str, Scalar] = field(default_factory=dict)
    #: Channel keys to preview; all of the template's when None.
    channels: Sequence[str] | None = None
    use_short_links: bool = False
    #: The SMS sender whose smartEncoding setting applies (the default sender when None).
    from_: str | None = None
    #: Forces smart encoding on or off, whatever the sender says.
    smart_encoding: bool | None = None


def sms_report(text: str, *, base_url: str, use_short_links: bool, smart: bool) -> dict[str, Any]:
    """What an SMS text costs: encoding, size and segments, after link shortening.

    The top-level figures are for the text as written (links shortened when asked);
    ``smartEncoding`` shows the same text transliterated to GSM-7, and ``applied`` says which
    of the two would be sent.
    """
    links: list[dict[str, str]] = []
    after = text
    if use_short_links:
        after, pairs = rewrite_urls(text, lambda _url: f"{base_url}/{PLACEHOLDER_CODE}")
        links = [{"url": url, "shortUrl": short} for short, url in pairs]
    info = analyze(after)
    smart_text = smart_encode(after)
    smart_info = analyze(smart_text)
    return {
        "encoding": info.encoding.value,
        "characters": info.characters,
        "units": info.units,
        "segments": info.segments,
        "perSegment": info.per_segment,
        "remaining": info.remaining,
        "ucs2Characters": list(info.ucs2_characters),
        "tooLong": info.characters > SMS_MAX_CHARACTERS,
        "textAfterShortening": after,
        "links": links,
        "smartEncoding": {
            "applied": smart,
            "text": smart_text,
            "encoding": smart_info.encoding.value,
            "characters": smart_info.characters,
            "segments": smart_info.segments,
            "remaining": smart_info.remaining,
            "ucs2Characters": list(smart_info.ucs2_characters),
        },
    }


async def _smart_encoding(
    session: AsyncSession, project_id: str, options: PreviewOptions, stored_from: Any
) -> bool:
    if options.smart_encoding is not None:
        return options.smart_encoding
    senders = SenderDirectory(session, project_id)
    if options.from_:
        return (await senders.resolve("sms", options.from_)).smart_encoding
    try:
        sender = await senders.resolve("sms", stored_from if isinstance(stored_from, str) else None)
    except ValidationFailed:
        return False  # no such sender: the send itself will say so
    return sender.smart_encoding


async def _preview(
    session: AsyncSession,
    project_id: str,
    snapshot: TemplateSnapshot,
    options: PreviewOptions,
    *,
    base_url: str,
    budget: tpl.RenderBudget,
) -> dict[str, Any]:
    problems = _Problems()
    if options.channels is None:
        selected = list(snapshot.channels)
    else:
        selected = []
        for raw in options.channels:
            key = raw.lower()
            if key not in snapshot.channels:
                problems.add(
                    "channels",
                    f"The template has no '{raw}' channel; it has: "
                    f"{', '.join(snapshot.channels) or 'none'}.",
                    "unknown_channel",
                )
            elif key not in selected:
                selected.append(key)
    problems.raise_if_any()

    rendered: dict[str, dict[str, Any]] = {}
    missing: dict[str, list[str]] = {}

    def render_selected() -> None:
        for key in selected:
            try:
                rendered[key] = render_channel(snapshot, key, {}, options.variables, budget=budget)
            except tpl.MissingVariables as e:
                for name, names in (e.by_field or {"text": e.names}).items():
                    missing[f"channels.{key}.{name}"] = names
            except tpl.TemplateProblem as e:
                raise template_error(e, f"channels.{key}.{e.field or 'text'}") from e

    await off_loop(render_selected)
    if missing:
        names = sorted({n for ns in missing.values() for n in ns})
        plural = "s" if len(names) > 1 else ""
        raise ValidationFailed(
            f"Missing template variable{plural}: {', '.join(names)}.",
            code="missing_variables",
            details={"missing": names, "fields": missing},
        )

    sms = rendered.get("sms")
    if sms is not None and isinstance(sms.get("text"), str):
        smart = await _smart_encoding(session, project_id, options, sms.get("from"))
        sms.update(
            sms_report(
                sms["text"], base_url=base_url, use_short_links=options.use_short_links, smart=smart
            )
        )
    return {
        "templateId": snapshot.id or None,
        "version": snapshot.version or None,
        "variables": variables_in(snapshot.channels),
        "channels": rendered,
    }


async def preview_template(
    session: AsyncSession,
    project_id: str,
    template_id: str,
    options: PreviewOptions,
    *,
    base_url: str,
    budget: tpl.RenderBudget = tpl.DEFAULT_BUDGET,
) -> dict[str, Any]:
    """Render a stored template per channel with ``options``; nothing is stored."""
    snapshot = await load_template(session, project_id, template_id)
    return await _preview(session, project_id, snapshot, options, base_url=base_url, budget=budget)


async def preview_content(
    session: AsyncSession,
    project_id: str,
    channels: Any,
    options: PreviewOptions,
    *,
    base_url: str,
    budget: tpl.RenderBudget = tpl.DEFAULT_BUDGET,
) -> dict[str, Any]:
    """Preview channel content given in the request (validated like a template being saved)."""
    checked = await off_loop(lambda: validate_channels(channels))
    snapshot = TemplateSnapshot("", "", 0, checked, [])
    return await _preview(session, project_id, snapshot, options, base_url=base_url, budget=budget)
