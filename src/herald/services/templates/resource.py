"""Templates as a resource: validated and compile-checked when saved, versioned on every edit.

Checks live in :mod:`~herald.services.templates.validation`, renders in
:mod:`~herald.services.templates.rendering`, previews in :mod:`~herald.services.templates.preview`;
message creation reads a template through :func:`load_template`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.errors import NotFound
from herald.services.templates.rendering import TemplateSnapshot, off_loop, variables_in
from herald.services.templates.validation import (
    check_name,
    check_ranges,
    template_problems,
    validate_channels,
)
from herald.store import templates as store
from herald.store.base import new_id
from herald.store.templates import Template, TemplateVersion

__all__ = [
    "SORT_KEYS",
    "TemplateFields",
    "create_template",
    "delete_template",
    "get_template",
    "list_templates",
    "list_versions",
    "load_template",
    "template_out",
    "update_template",
]

# TWIN's sort keys for the template list: templates have no status.
SORT_KEYS = ("createdAt",)


@dataclass(frozen=True)
class TemplateFields:
    """A create or update request; ``None`` means "not given" (on update: unchanged)."""

    name: str | None = None
    channels: Any = None
    allowed_time_ranges: Any = None


async def _live(
    session: AsyncSession, project_id: str, template_id: str, *, lock: bool = False
) -> Template:
    template = await store.live_template(session, project_id, template_id, lock=lock)
    if template is None:
        raise NotFound(f"No template with id {template_id}.", code="template_not_found")
    return template


async def _version(session: AsyncSession, template: Template, version: int) -> TemplateVersion:
    row = await store.template_version(session, template.id, version)
    if row is None:
        raise NotFound(
            f"Template {template.id} has no version {version}; its versions are 1 to "
            f"{template.current_version}.",
            code="template_version_not_found",
        )
    return row


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
    session: AsyncSession,
    project_id: str,
    fields: TemplateFields,
    *,
    now: datetime,
    created_by: str | None = None,
) -> Template:
    """Validate and store a new template as its version 1, saved by user ``created_by``."""
    problems = template_problems()
    name = check_name(fields.name, problems)
    channels = await off_loop(
        lambda: validate_channels(
            {} if fields.channels is None else fields.channels, problems=problems
        )
    )
    ranges = check_ranges(
        [] if fields.allowed_time_ranges is None else fields.allowed_time_ranges, problems
    )
    problems.raise_if_any()
    template = Template(
        id=new_id(), project_id=project_id, name=name, current_version=1, created_at=now
    )
    session.add(template)
    await session.flush()
    await store.add_version(session, template, channels, ranges, now=now, created_by=created_by)
    return template


async def update_template(
    session: AsyncSession,
    project_id: str,
    template_id: str,
    fields: TemplateFields,
    *,
    now: datetime,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Store the edit as a new version; fields not given keep their current value."""
    template = await _live(session, project_id, template_id, lock=True)
    current = await _version(session, template, template.current_version)
    problems = template_problems()
    name = template.name if fields.name is None else check_name(fields.name, problems)
    channels = (
        current.channels
        if fields.channels is None
        else await off_loop(lambda: validate_channels(fields.channels, problems=problems))
    )
    ranges = (
        current.allowed_time_ranges
        if fields.allowed_time_ranges is None
        else check_ranges(fields.allowed_time_ranges, problems)
    )
    problems.raise_if_any()
    template.name = name
    template.current_version += 1
    template.updated_at = now
    version = await store.add_version(
        session, template, channels, ranges, now=now, created_by=created_by
    )
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
    count, pairs = await store.current_templates(
        session, project_id, name=name, ids=ids, limit=limit, offset=offset, newest_first=sort[1]
    )
    items = await off_loop(lambda: [template_out(t, v) for t, v in pairs])
    return {"count": count, "items": items}


async def list_versions(session: AsyncSession, project_id: str, template_id: str) -> dict[str, Any]:
    """The template's versions, newest first, each with who saved it (``createdBy``: the
    user's e-mail, null when it came with an API key)."""
    template = await _live(session, project_id, template_id)
    rows = await store.versions_of(session, template.id)
    items = await off_loop(
        lambda: [
            {
                "version": row.version,
                "current": row.version == template.current_version,
                "createdAt": row.created_at.isoformat(),
                "createdBy": author,
                "variables": variables_in(row.channels or {}),
            }
            for row, author in rows
        ]
    )
    return {"count": len(rows), "items": items}


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
