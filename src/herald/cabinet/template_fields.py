"""The names a person reads for a template's fields (``text``, ``subject``, …), shared by the
Send and Templates pages."""

from __future__ import annotations

from collections.abc import Callable

from herald.cabinet.rendering import N_, translate

FIELD_LABELS: dict[str, str] = {
    "text": N_("Text"),
    "subject": N_("Subject"),
    "html": N_("HTML"),
    "title": N_("Title"),
    "body": N_("Body"),
    "header": N_("Header"),
    "buttons": N_("Buttons"),
    "imageUrl": N_("Image address"),
    "buttonUrl": N_("Button link"),
    "buttonText": N_("Button text"),
    "templateName": N_("Approved template name"),
    "contentSid": N_("Twilio Content SID"),
    "language": N_("Template language"),
}


def field_labeller(language: str) -> Callable[[str], str]:
    """``field_label(name)`` for templates: a field's name in the reader's language."""
    return lambda name: translate(language, FIELD_LABELS.get(name, name))
