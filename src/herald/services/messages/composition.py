"""The text one recipient gets: template and request merged, rendered, shortened, encoded.

Runs before anything is stored, so a missing variable or a text too long after rendering is
a 422 naming the problem, never a half-accepted request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.domain.segments import SMS_MAX_CHARACTERS, count_segments, smart_encode
from herald.domain.templates import DEFAULT_BUDGET, MissingVariables, RenderBudget, TemplateProblem
from herald.schemas.messages import Scalar
from herald.services.short_links import PlannedLink, shorten_text
from herald.services.templates.rendering import TemplateSnapshot, render_channel


@dataclass(frozen=True, slots=True)
class ComposedSms:
    text: str
    segments: int
    links: list[PlannedLink] = field(default_factory=list)


class CompositionProblem(ValueError):
    """The content cannot be built for this recipient; ``code`` is the API's machine code."""

    def __init__(self, message: str, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}


def _rendered(
    template: TemplateSnapshot | None,
    channel: str,
    overrides: Mapping[str, Any],
    variables: Mapping[str, Scalar],
    budget: RenderBudget,
    *,
    missing: str,
) -> dict[str, Any]:
    """The channel's content: rendered, or the request's own when there is nothing to render.

    Request text without a template is only rendered when variables were given, so a TWIN
    client sending literal ``{{`` keeps working.
    """
    if template is None and not variables:
        return dict(overrides)
    try:
        return render_channel(template, channel, overrides, variables, budget=budget)
    except MissingVariables as e:
        raise CompositionProblem(
            f"{missing}: {', '.join(e.names)}", "missing_variables", {"missing": e.names}
        ) from e
    except TemplateProblem as e:
        # Callers end the sentence themselves.
        raise CompositionProblem(e.message.rstrip("."), e.code) from e


def compose_sms(
    template: TemplateSnapshot | None,
    overrides: Mapping[str, Any],
    variables: Mapping[str, Scalar],
    *,
    short_links_base: str | None,
    smart_encoding: bool,
    budget: RenderBudget = DEFAULT_BUDGET,
) -> ComposedSms:
    """The SMS text for one recipient, with the short links it needs."""
    content = _rendered(template, "sms", overrides, variables, budget, missing="variables missing")
    text = content.get("text")
    if not isinstance(text, str) or not text:
        where = f"template {template.name!r} has" if template else "the request has"
        raise CompositionProblem(f"no SMS text: {where} no channels.sms.text", "missing_text")
    if not text.strip():
        raise CompositionProblem("the SMS text is only blanks; nothing would be said", "blank_text")
    links: list[PlannedLink] = []
    if short_links_base is not None:
        text, links = shorten_text(text, short_links_base)
    if smart_encoding:
        text = smart_encode(text)
    if len(text) > SMS_MAX_CHARACTERS:
        raise CompositionProblem(
            f"the text is {len(text)} characters long after rendering; an SMS may have at "
            f"most {SMS_MAX_CHARACTERS}",
            "text_too_long",
        )
    return ComposedSms(text, count_segments(text), links)


# Longest text each messenger accepts (Telegram's and WhatsApp's documented limits).
TEXT_LIMITS = {"telegram": 4096, "whatsapp": 4096, "chat": 4000}
RICH_FIELDS = (
    "subject",
    "html",
    "imageUrl",
    "buttonUrl",
    "buttonText",
    "contentSid",
    "templateName",
    "language",
    # TWIN's channel fields: delivery settings, never rendered.
    "fromEmail",
    "fromName",
    "replyTo",
    "templateNamespace",
    "mediaUrl",
    "documentFilename",
)


@dataclass(frozen=True, slots=True)
class ComposedRich:
    text: str
    content: dict[str, str]


def compose_rich(
    template: TemplateSnapshot | None,
    channel: str,
    overrides: Mapping[str, Any],
    variables: Mapping[str, Scalar],
    *,
    budget: RenderBudget = DEFAULT_BUDGET,
) -> ComposedRich:
    """E-mail, Telegram or WhatsApp content for one recipient: text plus the rich fields."""
    missing = f"variables missing for {channel}"
    content = _rendered(template, channel, overrides, variables, budget, missing=missing)
    text = content.get("text") if isinstance(content.get("text"), str) else None
    if not (text and text.strip()) and not (channel == "email" and content.get("html")):
        raise CompositionProblem(f"no {channel} text: give channels.{channel}.text", "missing_text")
    limit = TEXT_LIMITS.get(channel)
    if text and limit and len(text) > limit:
        raise CompositionProblem(
            f"the {channel} text is {len(text)} characters long; at most {limit} are allowed",
            "text_too_long",
        )
    extras = {k: str(content[k]) for k in RICH_FIELDS if content.get(k)}
    return ComposedRich(text or "", extras)
