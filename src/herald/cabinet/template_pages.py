"""Templates (TWIN's "Templates"): the list and its search, an editor per channel with a live
preview and the variables it found, the versions, Delete, and the sample file for a send task.

Saving, versions and the sample are ``services.templates.resource``'s and
``services.tasks.files``'s, exactly what ``/api/v1/templates`` calls; a refused save shows
each problem (a syntax error with its line and column) under the field it concerns.

Each version shows who saved it: the user's e-mail, or "API key" for a save that came
with one (no person behind it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.datastructures import FormData

from herald.cabinet.readers import Reader, allowed, herald_of, posted
from herald.cabinet.rendering import N_, page, render, translate
from herald.cabinet.template_fields import field_labeller
from herald.domain.templates import CHANNEL_FIELDS, LIST_FIELDS
from herald.errors import HeraldError, NotFound
from herald.services.messages.plans import SUPPORTED_CHANNELS
from herald.services.tasks.files import template_sample
from herald.services.templates import resource as service
from herald.services.templates.preview import PreviewOptions, preview_content
from herald.services.templates.rendering import variables_in
from herald.store.templates import Template

router = APIRouter(include_in_schema=False)

Editing = Annotated[Reader, Depends(allowed("templates"))]
Saving = Annotated[Reader, Depends(posted("templates"))]

PAGE_SIZE = 50
# A search looks at this many matching names at most (the newest first).
SEARCH_LIMIT = 1000
# Fields written on several lines (the rest are one line each).
LONG_FIELDS = frozenset({"text", "html", "body", "header", "buttons"})
_FIELD = "ch."


@dataclass
class Draft:
    """The editor's fields as typed: ``fields[channel][name]`` (buttons one per line)."""

    name: str = ""
    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    # Channels shown open although empty (a new template starts with SMS).
    opened: set[str] = field(default_factory=set)

    def value(self, channel: str, name: str) -> str:
        """What the box of ``channel``'s ``name`` holds."""
        return self.fields.get(channel, {}).get(name, "")

    def has(self, channel: str) -> bool:
        """Whether ``channel`` has any content."""
        return any(v.strip() for v in self.fields.get(channel, {}).values())


def draft_of_form(form: FormData) -> Draft:
    """The draft a posted editor holds."""
    draft = Draft(name=str(form.get("name") or "").strip())
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if key.startswith(_FIELD):
            channel, _, name = key.removeprefix(_FIELD).partition(".")
            if channel in CHANNEL_FIELDS and name in CHANNEL_FIELDS[channel]:
                draft.fields.setdefault(channel, {})[name] = value
        elif key.startswith("sample."):
            draft.samples[key.removeprefix("sample.")] = value
    return draft


def draft_of_template(template: Mapping[str, Any]) -> Draft:
    """The draft of a stored template (a version of it)."""
    draft = Draft(name=str(template.get("name", "")))
    for channel, content in (template.get("channels") or {}).items():
        for name in CHANNEL_FIELDS.get(channel, ()):
            value = content.get(name)
            if isinstance(value, list):
                draft.fields.setdefault(channel, {})[name] = "\n".join(map(str, value))
            elif isinstance(value, str):
                draft.fields.setdefault(channel, {})[name] = value
    return draft


def channels_of(draft: Draft, stored: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The ``channels`` object the draft stands for; a channel keeps the delivery settings
    (``from``, ``provider``, …) it had, which this editor does not show."""
    channels: dict[str, dict[str, Any]] = {}
    for channel in CHANNEL_FIELDS:
        if not draft.has(channel):
            continue
        kept = stored.get(channel) if stored else None
        content: dict[str, Any] = {
            k: v for k, v in (kept or {}).items() if k not in CHANNEL_FIELDS[channel]
        }
        for name in CHANNEL_FIELDS[channel]:
            value = draft.value(channel, name)
            if name in LIST_FIELDS:
                lines = [line.strip() for line in value.splitlines() if line.strip()]
                if lines:
                    content[name] = lines
            elif value.strip():
                content[name] = value
        channels[channel] = content
    return channels


def field_name(path: str) -> str:
    """The editor's box a problem at ``path`` (``channels.sms.text``) concerns."""
    if path == "name":
        return "name"
    found = re.match(r"^channels\.([A-Za-z]+)(?:\.([A-Za-z]+))?", path)
    if found is None:
        return "general"
    channel, name = found.group(1).lower(), found.group(2)
    return f"{_FIELD}{channel}.{name}" if name else f"{_FIELD}{channel}"


_SAID = {
    "invalid_template_name": N_("Give the template a name (at most 200 characters)."),
    "field_too_long": N_("This text is too long (at most 20,000 characters)."),
    "missing_variables": N_("Fill in every variable the text uses."),
}


def problems_of(error: HeraldError, who: Reader) -> dict[str, list[str]]:
    """The refusal's problems by editor box; a syntax error says its line and column."""
    items = error.details.get("errors")
    if not isinstance(items, list) or not items:
        items = [
            {
                "path": str(error.details.get("field", "")),
                "code": error.code,
                "message": error.message,
                **{k: error.details[k] for k in ("line", "column") if k in error.details},
            }
        ]
    found: dict[str, list[str]] = {}
    for item in items:
        code = str(item.get("code", ""))
        said = _SAID.get(code)
        message = translate(who.language, said) if said else str(item.get("message", ""))
        # The service's sentence starts with its own "line 1, column 5: "; said again here.
        message = re.sub(r"^(?:[\w.\[\]]+: )?line \d+, column \d+: ", "", message)
        if item.get("line") is not None:
            message = translate(
                who.language,
                N_("Line %(line)s, column %(column)s: %(problem)s"),
                line=str(item["line"]),
                column=str(item.get("column") or 1),
                problem=message,
            )
        where = field_name(str(item.get("path", "")))
        found.setdefault(where, []).append(message)
    return found


async def preview(request: Request, who: Reader, draft: Draft) -> dict[str, Any]:
    """The draft rendered per channel with the sample values, the variables it uses, or the
    problems that stop it."""
    channels = channels_of(draft)
    result: dict[str, Any] = {"channels": {}, "problems": {}, "variables": [], "missing": []}
    if not channels:
        return result
    result["variables"] = variables_in(channels)
    values: dict[str, Any] = {k: v for k, v in draft.samples.items() if v != ""}
    herald = herald_of(request)
    for attempt in range(2):
        try:
            async with herald.sessions() as session:
                rendered = await preview_content(
                    session,
                    who.project_id,
                    channels,
                    PreviewOptions(variables=values),
                    herald.settings,
                )
        except HeraldError as e:
            missing = e.details.get("missing") if e.code == "missing_variables" else None
            if attempt == 0 and isinstance(missing, list):
                result["missing"] = [str(n) for n in missing]
                values.update({name: f"[{name}]" for name in result["missing"]})
                continue
            result["problems"] = problems_of(e, who)
            return result
        result["channels"] = rendered["channels"]
        result["variables"] = rendered["variables"]
        return result
    return result


def _context(who: Reader) -> dict[str, Any]:
    return {
        "all_channels": list(CHANNEL_FIELDS),
        "channel_fields": CHANNEL_FIELDS,
        "long_fields": LONG_FIELDS,
        "field_label": field_labeller(who.language),
        "sheet_channels": SUPPORTED_CHANNELS,
    }


async def _matching_ids(request: Request, who: Reader, search: str) -> list[str]:
    """The ids of the project's templates whose name holds ``search`` (any case)."""
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    async with herald_of(request).sessions() as session:
        rows = await session.scalars(
            select(Template.id)
            .where(
                Template.project_id == who.project_id,
                Template.deleted_at.is_(None),
                func.lower(Template.name).like(f"%{escaped}%", escape="\\"),
            )
            .order_by(Template.created_at.desc())
            .limit(SEARCH_LIMIT)
        )
        return list(rows)


@router.get("/templates", response_class=HTMLResponse)
async def list_page(
    request: Request,
    who: Editing,
    q: str = "",
    page_number: Annotated[int, Query(alias="page")] = 1,
) -> HTMLResponse:
    """The templates, newest first; ``q`` keeps those whose name holds it."""
    search = q.strip()
    number = max(page_number, 1)
    listed: dict[str, Any] = {"count": 0, "items": []}
    ids = await _matching_ids(request, who, search) if search else None
    if ids is None or ids:
        async with herald_of(request).sessions() as session:
            listed = await service.list_templates(
                session,
                who.project_id,
                ids=ids or (),
                limit=PAGE_SIZE,
                offset=(number - 1) * PAGE_SIZE,
            )
    context = {
        "search": search,
        "listed": listed,
        "page_number": number,
        "pages": max(1, -(-listed["count"] // PAGE_SIZE)),
        "deleted": request.query_params.get("deleted") == "1",
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "template-list":
        return HTMLResponse(render(request, who, "templates/_list.html", **context))
    return page(request, who, "templates/list.html", **context)


async def _editor(
    request: Request,
    who: Reader,
    draft: Draft,
    *,
    template: dict[str, Any] | None = None,
    versions: list[dict[str, Any]] | None = None,
    problems: Mapping[str, list[str]] | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> HTMLResponse:
    return page(
        request,
        who,
        "templates/edit.html",
        status_code=status_code,
        draft=draft,
        stored=template,
        versions=versions or [],
        problems=problems or {},
        preview=await preview(request, who, draft),
        saved=saved,
        **_context(who),
    )


@router.get("/templates/new", response_class=HTMLResponse)
async def new_page(request: Request, who: Editing) -> HTMLResponse:
    """An empty editor (an SMS text to start with)."""
    return await _editor(request, who, Draft(opened={"sms"}))


@router.post("/templates/new")
async def create(request: Request, who: Saving) -> Response:
    """Store the new template (version 1), then open it."""
    draft = draft_of_form(await request.form())
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            created = await service.create_template(
                session,
                who.project_id,
                service.TemplateFields(draft.name, channels_of(draft)),
                now=herald.clock.now(),
                created_by=who.user_id,
            )
            template_id = created.id
    except HeraldError as e:
        return await _editor(
            request, who, draft, problems=problems_of(e, who), status_code=e.status_code
        )
    return RedirectResponse(f"/templates/{template_id}?saved=1", status_code=303)


@router.post("/templates/preview", response_class=HTMLResponse)
async def preview_fragment(request: Request, who: Saving) -> HTMLResponse:
    """The live preview of the editor as it now is (htmx)."""
    draft = draft_of_form(await request.form())
    shown = await preview(request, who, draft)
    return HTMLResponse(
        render(request, who, "templates/_preview.html", preview=shown, **_context(who))
    )


@router.post("/templates/samples", response_class=HTMLResponse)
async def samples_fragment(request: Request, who: Saving) -> HTMLResponse:
    """The sample-value boxes for the variables the texts now use, keeping what was typed."""
    draft = draft_of_form(await request.form())
    names = variables_in(channels_of(draft))
    return HTMLResponse(
        render(request, who, "templates/_samples.html", draft=draft, variables=names)
    )


async def _stored(
    request: Request, who: Reader, template_id: str, version: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with herald_of(request).sessions() as session:
        template = await service.get_template(session, who.project_id, template_id, version=version)
        versions = await service.list_versions(session, who.project_id, template_id)
    return template, versions["items"]


def _not_found(request: Request, who: Reader, status_code: int = 404) -> HTMLResponse:
    return page(request, who, "templates/missing.html", status_code=status_code)


@router.get("/templates/{template_id}", response_class=HTMLResponse)
async def edit_page(
    request: Request, who: Editing, template_id: str, version: int | None = None
) -> HTMLResponse:
    """The template's editor (its current version, or ``version``), versions and sample."""
    try:
        template, versions = await _stored(request, who, template_id, version)
    except NotFound:
        return _not_found(request, who)
    return await _editor(
        request,
        who,
        draft_of_template(template),
        template=template,
        versions=versions,
        saved=request.query_params.get("saved") == "1",
    )


@router.post("/templates/{template_id}")
async def save(request: Request, who: Saving, template_id: str) -> Response:
    """Store the edit as the template's new version."""
    draft = draft_of_form(await request.form())
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            current = await service.get_template(session, who.project_id, template_id)
            await service.update_template(
                session,
                who.project_id,
                template_id,
                service.TemplateFields(draft.name, channels_of(draft, current["channels"])),
                now=herald.clock.now(),
                created_by=who.user_id,
            )
    except NotFound:
        return _not_found(request, who)
    except HeraldError as e:
        template, versions = await _stored(request, who, template_id)
        return await _editor(
            request,
            who,
            draft,
            template=template,
            versions=versions,
            problems=problems_of(e, who),
            status_code=e.status_code,
        )
    return RedirectResponse(f"/templates/{template_id}?saved=1", status_code=303)


@router.post("/templates/{template_id}/delete")
async def delete(request: Request, who: Saving, template_id: str) -> Response:
    """Delete the template (its versions stay, for the messages sent from them)."""
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            await service.delete_template(
                session, who.project_id, template_id, now=herald.clock.now()
            )
    except NotFound:
        return _not_found(request, who)
    return RedirectResponse("/templates?deleted=1", status_code=303)


_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/templates/{template_id}/sample.{fmt}")
async def sample(
    request: Request, who: Editing, template_id: str, fmt: Literal["csv", "xlsx"]
) -> Response:
    """The file a send task takes for this template: its columns and one example row."""
    try:
        async with herald_of(request).sessions() as session:
            content = await template_sample(session, who.project_id, template_id, None, fmt)
    except NotFound:
        return _not_found(request, who)
    except HeraldError as e:
        # No channel a spreadsheet can send (the page offers no link then).
        return _not_found(request, who, e.status_code)
    return Response(
        content,
        media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="template-sample.{fmt}"'},
    )
