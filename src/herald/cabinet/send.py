"""Send: one message to one person, with a live preview of what each channel will carry.

The form becomes the very request ``POST /api/v1/messages`` takes (``CreateMessagesIn``) and
goes through the same ``services.messages.idempotency.create_messages``; the preview is
``services.templates.preview``'s. Nothing here decides what a valid message is: a refusal
is the service's 422, each of its problems shown next to the field it names.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from herald.cabinet.readers import Reader, allowed, herald_of, posted
from herald.cabinet.rendering import N_, page, render, translate
from herald.cabinet.template_fields import field_labeller
from herald.errors import Conflict, HeraldError, ValidationFailed
from herald.schemas.messages import CreateMessagesIn, pydantic_code
from herald.services.messages import idempotency
from herald.services.templates.preview import PreviewOptions, preview_content
from herald.services.templates.rendering import TemplateSnapshot, variables_in
from herald.services.templates.resource import list_templates, load_template

router = APIRouter(include_in_schema=False)

Sending = Annotated[Reader, Depends(allowed("send"))]
Posting = Annotated[Reader, Depends(posted("send"))]

# The channels one person can be sent to from this form, in the order the menu offers them
# (a chat session needs a bot and is started from the API).
CHANNELS = ("sms", "email", "whatsapp", "telegram")
# Where each channel sends to: the destination field it needs.
ADDRESS_OF = {"sms": "phone", "whatsapp": "phone", "email": "email", "telegram": "messenger"}
# Allowed time ranges the form offers (a message may have more through the API).
RANGE_ROWS = 2
# Templates the menu offers (the newest first).
TEMPLATE_CHOICES = 200
_VARIABLE = "var."


@dataclass
class Row:
    """One channel of the cascade as the form holds it."""

    channel: str
    text: str = ""
    subject: str = ""


@dataclass
class Draft:
    """The form's fields, kept as typed so a refused form comes back as it was."""

    template: str = ""
    phone: str = ""
    email: str = ""
    messenger: str = ""
    rows: list[Row] = field(default_factory=lambda: [Row("sms")])
    variables: dict[str, str] = field(default_factory=dict)
    send_at: str = ""
    ranges: list[tuple[str, str]] = field(default_factory=list)
    short_links: bool = False
    key: str = ""

    def range_rows(self) -> list[tuple[str, str]]:
        """The ranges padded to the rows the form shows."""
        return (self.ranges + [("", "")] * RANGE_ROWS)[: max(RANGE_ROWS, len(self.ranges))]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v if isinstance(v, str) else "" for v in form.getlist(name)]


def draft_of(form: FormData) -> Draft:
    """The draft a posted form holds."""
    channels, texts, subjects = (
        _texts(form, "channel"),
        _texts(form, "text"),
        _texts(form, "subject"),
    )
    rows = [
        Row(
            channel.strip().lower(),
            texts[i] if i < len(texts) else "",
            (subjects[i] if i < len(subjects) else "").strip(),
        )
        for i, channel in enumerate(channels)
        if channel.strip()
    ]
    starts, ends = _texts(form, "range_from"), _texts(form, "range_to")
    return Draft(
        template=_text(form, "template"),
        phone=_text(form, "phone"),
        email=_text(form, "email"),
        messenger=_text(form, "messenger"),
        rows=rows,
        variables={
            name.removeprefix(_VARIABLE): value
            for name, value in form.multi_items()
            if name.startswith(_VARIABLE) and isinstance(value, str)
        },
        send_at=_text(form, "send_at"),
        ranges=[
            (start.strip(), ends[i].strip() if i < len(ends) else "")
            for i, start in enumerate(starts)
        ],
        short_links=_text(form, "short_links") == "on",
        key=_text(form, "key"),
    )


def _send_at(value: str, who: Reader) -> str:
    """The form's local date and time as an instant in the reader's zone (the service
    judges anything else it is given)."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is None:
        at = at.replace(tzinfo=who.zone)
    return at.isoformat()


def given_variables(draft: Draft) -> dict[str, str]:
    """The variables a person filled in (an empty box is not a value)."""
    return {name: value for name, value in draft.variables.items() if value != ""}


def request_body(draft: Draft, who: Reader) -> dict[str, Any]:
    """The body of ``POST /api/v1/messages`` this form stands for."""
    destination = {
        key: value
        for key, value in (
            ("phone", draft.phone),
            ("email", draft.email),
            ("messengerUserId", draft.messenger),
        )
        if value
    }
    channels: dict[str, dict[str, str]] = {}
    for row in draft.rows:
        content = {"text": row.text} if row.text.strip() else {}
        if row.channel == "email" and row.subject:
            content["subject"] = row.subject
        channels.setdefault(row.channel, content)
    message: dict[str, Any] = {"destinations": [destination], "channels": channels}
    if draft.template:
        message["templateId"] = draft.template
    if variables := given_variables(draft):
        message["variables"] = variables
    if draft.send_at:
        message["sendAt"] = _send_at(draft.send_at, who)
    ranges = [[start, end] for start, end in draft.ranges if start or end]
    if ranges:
        message["allowedTimeRanges"] = ranges
    if draft.short_links:
        message["useShortLinks"] = True
    return {"messages": [message]}


# Where a problem's path (``messages[0].channels.sms.text``) is shown on the form.
_FIELD_OF = {
    "templateId": "template",
    "sendAt": "send_at",
    "allowedTimeRanges": "ranges",
    "timezone": "ranges",
    "variables": "variables",
    "useShortLinks": "short_links",
}
_DESTINATION_FIELD = {"phone": "phone", "email": "email", "messengerUserId": "messenger"}


def field_of(path: str, code: str) -> str:
    """The form field a problem at ``path`` concerns (``general`` when none)."""
    if code == "missing_variables":
        return "variables"
    if code == "missing_phone":
        return "phone"
    rest = re.sub(r"^messages(\[\d+\])?\.?", "", path)
    if rest.startswith("destinations"):
        inner = re.sub(r"^destinations(\[\d+\])?\.?", "", rest)
        head = re.split(r"[.\[]", inner)[0]
        if head == "variables":
            return "variables"
        return _DESTINATION_FIELD.get(head, "destination")
    if rest.startswith("channels."):
        return "channel:" + re.split(r"[.\[]", rest)[1].lower()
    return _FIELD_OF.get(
        re.split(r"[.\[]", rest)[0], "channels" if rest == "channels" else "general"
    )


# The service's sentences are English; these say the common ones in the reader's language.
_SAID = {
    "missing_variables": N_("Fill in every variable the text uses."),
    "invalid_phone": N_("The phone number is not valid; write it with its country code."),
    "missing_channel": N_("Add a channel with a text, or pick a template."),
    "template_not_found": N_("There is no such template in your project."),
    "missing_phone": N_("Give the phone number the message goes to."),
    "missing_address": N_("Give an address for at least one of the channels."),
    "invalid_send_at": N_("Give a date and a time, e.g. 2026-12-07 14:05."),
    "send_at_too_far": N_("This is too far ahead; pick an earlier date."),
    "invalid_time_ranges": N_("Each range needs a start and an end that differ."),
    "duplicate_channel": N_("This channel is in the cascade twice."),
    "missing_field": N_("This field is required."),
}


def problems_of(error: HeraldError, who: Reader) -> dict[str, list[str]]:
    """The refusal's problems grouped by the form field they concern, each a sentence."""
    items = error.details.get("errors") if isinstance(error.details, dict) else None
    if not isinstance(items, list) or not items:
        items = [
            {
                "path": str(error.details.get("field", "")),
                "code": error.code,
                "message": error.message,
            }
        ]
    found: dict[str, list[str]] = {}
    for item in items:
        code = str(item.get("code", ""))
        said = _SAID.get(code)
        sentence = translate(who.language, said) if said else str(item.get("message", ""))
        if code == "missing_variables" and isinstance(error.details.get("missing"), list):
            sentence += " (" + ", ".join(map(str, error.details["missing"])) + ")"
        where = field_of(str(item.get("path", "")), code)
        if sentence not in found.setdefault(where, []):
            found[where].append(sentence)
    return found


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in map(str, loc):
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


def parsed(body: dict[str, Any]) -> CreateMessagesIn:
    """The API's request model for ``body``; its refusals in the service's 422 shape."""
    try:
        return CreateMessagesIn.model_validate(body)
    except ValidationError as e:
        errors = [
            {
                "path": _path(tuple(err["loc"])),
                "message": err["msg"],
                "code": pydantic_code(err["type"]),
            }
            for err in e.errors()
        ]
        raise ValidationFailed("The form has problems.", details={"errors": errors}) from e


async def _templates(request: Request, who: Reader) -> list[dict[str, Any]]:
    async with herald_of(request).sessions() as session:
        listed = await list_templates(session, who.project_id, limit=TEMPLATE_CHOICES)
    return [{"id": t["id"], "name": t["name"]} for t in listed["items"]]


async def _snapshot(request: Request, who: Reader, template_id: str) -> TemplateSnapshot | None:
    if not template_id:
        return None
    try:
        async with herald_of(request).sessions() as session:
            return await load_template(session, who.project_id, template_id)
    except HeraldError:
        return None  # gone meanwhile: the send itself says so next to the menu


def _contents(draft: Draft, template: TemplateSnapshot | None) -> dict[str, dict[str, Any]]:
    """Each channel's content as it will be sent: the row's own text, else the template's."""
    rows = draft.rows or [
        Row(key) for key in (template.channels if template else {}) if key in CHANNELS
    ]
    contents: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.channel in contents or row.channel not in CHANNELS:
            continue
        stored = dict(template.channels.get(row.channel, {})) if template else {}
        if row.text.strip():
            stored["text"] = row.text
        if row.channel == "email" and row.subject:
            stored["subject"] = row.subject
        contents[row.channel] = stored
    return contents


def variable_names(draft: Draft, template: TemplateSnapshot | None) -> list[str]:
    """The variables the message's texts use (the template's and the rows' own)."""
    return variables_in(_contents(draft, template))


async def preview(request: Request, who: Reader, draft: Draft) -> dict[str, Any]:
    """What each channel will carry, in cascade order, or why it cannot be shown yet."""
    template = await _snapshot(request, who, draft.template)
    contents = _contents(draft, template)
    empty = [
        key
        for key, content in contents.items()
        if not str(content.get("text", "")).strip() and not content.get("html")
    ]
    shown = {key: content for key, content in contents.items() if key not in empty}
    result: dict[str, Any] = {
        "order": list(contents),
        "empty": empty,
        "channels": {},
        "problem": None,
        "missing": [],
    }
    if not shown:
        return result
    herald = herald_of(request)
    values: dict[str, Any] = dict(given_variables(draft))
    for attempt in range(2):
        options = PreviewOptions(variables=values, use_short_links=draft.short_links)
        try:
            async with herald.sessions() as session:
                rendered = await preview_content(
                    session, who.project_id, shown, options, herald.settings
                )
        except HeraldError as e:
            missing = e.details.get("missing") if e.code == "missing_variables" else None
            if attempt == 0 and isinstance(missing, list):
                # Shown with the missing names in brackets, and said which they are.
                result["missing"] = [str(name) for name in missing]
                values.update({name: f"[{name}]" for name in result["missing"]})
                continue
            result["problem"] = problems_of(e, who)
            return result
        result["channels"] = rendered["channels"]
        return result
    return result


async def _form_page(
    request: Request,
    who: Reader,
    draft: Draft,
    *,
    problems: Mapping[str, list[str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    template = await _snapshot(request, who, draft.template)
    return page(
        request,
        who,
        "send/form.html",
        status_code=status_code,
        draft=draft,
        channels=CHANNELS,
        templates=await _templates(request, who),
        variables=variable_names(draft, template),
        preview=await preview(request, who, draft),
        problems=problems or {},
        field_label=field_labeller(who.language),
    )


def _idempotency_key(form_key: str) -> str | None:
    """The Idempotency-Key of the form's send: its own random key (anything else: none)."""
    try:
        return f"cabinet-send:{uuid.UUID(form_key)}"
    except ValueError:
        return None


@router.get("/send", response_class=HTMLResponse)
async def send_page(request: Request, who: Sending, template: str = "") -> HTMLResponse:
    """The form (``?template=`` picks a template), its preview rendered in the same request."""
    draft = Draft(template=template.strip(), key=str(uuid.uuid4()))
    if draft.template:
        draft.rows = []  # the template's own channels, in its order
    return await _form_page(request, who, draft)


@router.post("/send/preview", response_class=HTMLResponse)
async def preview_fragment(request: Request, who: Posting) -> HTMLResponse:
    """The live preview (htmx, as the person types)."""
    draft = draft_of(await request.form())
    shown = await preview(request, who, draft)
    return HTMLResponse(
        render(
            request,
            who,
            "send/_preview.html",
            preview=shown,
            field_label=field_labeller(who.language),
        )
    )


@router.post("/send/variables", response_class=HTMLResponse)
async def variables_fragment(request: Request, who: Posting) -> HTMLResponse:
    """The variable boxes for the texts as they now are, keeping what was typed."""
    draft = draft_of(await request.form())
    names = variable_names(draft, await _snapshot(request, who, draft.template))
    return HTMLResponse(
        render(request, who, "send/_variables.html", draft=draft, variables=names, problems={})
    )


@router.post("/send")
async def send(request: Request, who: Posting) -> Response:
    """Send as ``POST /api/v1/messages`` would, then open the message's page."""
    draft = draft_of(await request.form())
    herald = herald_of(request)
    try:
        payload = parsed(request_body(draft, who))
        answer = await idempotency.create_messages(
            herald.sessions,
            herald.clock,
            herald.settings,
            who.project_id,
            payload,
            # The form's own key: a second click on Send creates nothing more.
            _idempotency_key(draft.key),
        )
    except Conflict:
        draft.key = str(uuid.uuid4())
        said = translate(who.language, N_("This form was already sent; check it and send again."))
        return await _form_page(request, who, draft, problems={"general": [said]}, status_code=409)
    except HeraldError as e:
        return await _form_page(
            request, who, draft, problems=problems_of(e, who), status_code=e.status_code
        )
    herald.work_available.set()
    created = json.loads(answer.body)
    return RedirectResponse(f"/messages/{created[0]['id']}", status_code=303)
