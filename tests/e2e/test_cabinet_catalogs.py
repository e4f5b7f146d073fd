"""Every string of the cabinet is in its English and Russian catalogs, translated."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from herald.cabinet import i18n

CABINET = Path(str(resources.files("herald.cabinet")))
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def _strings_in_the_code() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        CABINET, METHODS, OPTIONS, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _catalog(language: str) -> dict[str, object]:
    entries: dict[str, object] = {}
    folder = CABINET / "locale" / language / "LC_MESSAGES"
    for po_file in sorted(folder.glob("*.po")):
        with po_file.open("rb") as f:
            for message in read_po(f, locale=language):
                if message.id:
                    key = message.id[0] if isinstance(message.id, tuple) else message.id
                    entries[key] = message.string
    return entries


def test_every_string_has_an_english_and_a_russian_entry() -> None:
    wanted = _strings_in_the_code()
    assert len(wanted) > 100  # the extraction found the cabinet's strings
    for language in i18n.LANGUAGES:
        catalog = _catalog(language)
        missing = sorted(wanted - catalog.keys())
        assert not missing, f"{language}: add these to a .po file: {missing}"
        untranslated = sorted(
            key
            for key in wanted
            if not catalog[key] or (isinstance(catalog[key], tuple) and not all(catalog[key]))
        )
        assert not untranslated, f"{language}: translate {untranslated}"


def test_russian_is_russian() -> None:
    ru = i18n.translations("ru")
    assert ru.gettext("Messages") == "Сообщения"
    assert (
        ru.ngettext(
            "First click on a short link (%(num)s click in all)",
            "First click on a short link (%(num)s clicks in all)",
            5,
        )
        == "Первый переход по короткой ссылке (всего %(num)s переходов)"
    )
