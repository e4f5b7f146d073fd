"""The cabinet's two languages: catalogs, choosing a reader's language, dates and numbers.

Catalogs are the ``.po`` files under ``locale/<lang>/LC_MESSAGES/``, one file per part of
the cabinet (``cabinet.po`` for the shell and the Messages pages; each later page may bring
its own), all merged into one catalog per language. They are compiled in memory when the
cabinet is first used, so a clean checkout runs with no build step and no ``.mo`` files to
keep in step.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
# Names each language is offered under, in itself (a reader lost in the other one finds it).
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}

# One pattern for both: Babel puts the month in the genitive in Russian ("7 декабря 2026,
# 14:05"), where the CLDR "long" format would add "г." to the year.
LONG_DATE_TIME = "d MMMM y, HH:mm"
SHORT_DATE_TIME = "d MMM y, HH:mm:ss"


def _compiled(po_file: resources.abc.Traversable, language: str) -> Translations:
    with po_file.open("rb") as f:
        catalog = read_po(f, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


@functools.cache
def translations(language: str) -> Translations:
    """Every catalog of ``language``, merged (English when the language is unknown)."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    folder = resources.files("herald.cabinet").joinpath(f"locale/{language}/LC_MESSAGES")
    merged: Translations | None = None
    for po_file in sorted(folder.iterdir(), key=lambda f: f.name):
        if po_file.name.endswith(".po"):
            compiled = _compiled(po_file, language)
            merged = compiled if merged is None else merged.merge(compiled)
    return merged or Translations()


def _weighted(header: str) -> Iterable[tuple[float, str]]:
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag:
            yield quality, tag.strip().lower()


def from_accept_language(header: str | None) -> str:
    """The first of our languages the browser accepts (by its weights), else English."""
    ranked = sorted(_weighted(header or ""), key=lambda pair: -pair[0])
    for quality, tag in ranked:
        primary = tag.split("-", 1)[0]
        if quality > 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def choose(chosen: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The reader's language: their own choice, else the switch's cookie, else the browser's."""
    for candidate in (chosen, cookie):
        if candidate in LANGUAGES:
            return candidate
    return from_accept_language(accept_language)


def when(
    value: datetime | str | None, language: str, zone: ZoneInfo, *, short: bool = False
) -> str:
    """A moment in the reader's language and zone: "7 декабря 2026, 14:05"."""
    if value is None or value == "":
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    pattern = SHORT_DATE_TIME if short else LONG_DATE_TIME
    return format_datetime(at, pattern, tzinfo=zone, locale=Locale.parse(language))


def number(value: int | float, language: str) -> str:
    """A number with the reader's digit grouping ("1 000 000" in Russian)."""
    return format_decimal(value, locale=Locale.parse(language))
