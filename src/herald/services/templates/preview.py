"""Previews: a template (stored, or given in the request) rendered per channel; nothing is stored.

An SMS preview also says what the text costs: encoding, length and segments, after link
shortening and with or without smart encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import Settings
from herald.domain import templates as tpl
from herald.domain.links import rewrite_urls
from herald.domain.segments import SMS_MAX_CHARACTERS, analyze, smart_encode
from herald.errors import ValidationFailed
from herald.schemas.messages import Scalar
from herald.services.senders import SenderDirectory
from herald.services.short_links import CODE_LENGTH, short_link_base
from herald.services.templates.rendering import (
    TemplateSnapshot,
    budget_from_settings,
    off_loop,
    render_channel,
    variables_in,
)
from herald.services.templates.resource import load_template
from herald.services.templates.validation import (
    template_error,
    template_problems,
    validate_channels,
)

__all__ = [
    "PLACEHOLDER_CODE",
    "PreviewOptions",
    "preview_content",
    "preview_template",
    "sms_report",
]

# Preview shows shortened links with this stand-in code, as long as a real one.
PLACEHOLDER_CODE = "X" * CODE_LENGTH


@dataclass(frozen=True)
class PreviewOptions:
    """What the client asked the preview for."""

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


def _selected(snapshot: TemplateSnapshot, options: PreviewOptions) -> list[str]:
    """The channel keys to preview; a 422 naming each one the template does not have."""
    if options.channels is None:
        return list(snapshot.channels)
    problems = template_problems()
    selected: list[str] = []
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
    return selected


async def _preview(
    session: AsyncSession,
    project_id: str,
    snapshot: TemplateSnapshot,
    options: PreviewOptions,
    settings: Settings,
) -> dict[str, Any]:
    selected = _selected(snapshot, options)
    budget = budget_from_settings(settings)
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
                sms["text"],
                base_url=short_link_base(settings),
                use_short_links=options.use_short_links,
                smart=smart,
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
    settings: Settings,
) -> dict[str, Any]:
    """Render a stored template per channel with ``options``, within ``settings``' budget."""
    snapshot = await load_template(session, project_id, template_id)
    return await _preview(session, project_id, snapshot, options, settings)


async def preview_content(
    session: AsyncSession,
    project_id: str,
    channels: Any,
    options: PreviewOptions,
    settings: Settings,
) -> dict[str, Any]:
    """Preview channel content given in the request (validated like a template being saved)."""
    checked = await off_loop(lambda: validate_channels(channels))
    snapshot = TemplateSnapshot("", "", 0, checked, [])
    return await _preview(session, project_id, snapshot, options, settings)
