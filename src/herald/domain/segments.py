"""SMS encoding and segment counting, modelled on Twilio's message-segment-calculator.

This reproduces the behaviour of Twilio's public calculator
(github.com/TwilioDevEd/message-segment-calculator), as summarised in
``reference/twilio.md`` section 6:

* A message is GSM-7 when every character is in the GSM 03.38 basic set (1 septet)
  or its extension table (form feed, ``^ { } \\ [ ~ ] |`` and ``€``: an escape plus a
  character, 2 septets). The escape code itself (U+001B) is not accepted as text,
  matching Twilio's table. Any other character makes the whole message UCS-2.
* A single SMS holds 140 octets: 160 septets or 70 UTF-16 code units. A multipart
  SMS spends 6 octets on the user data header, leaving 153 septets or 67 units per
  part.
* Parts are filled greedily and an escape pair (GSM-7) or a surrogate pair (an astral
  character such as an emoji, 2 UCS-2 units) is never split across parts, so a part
  may end one unit short. The count therefore comes from packing, not from dividing.

Deliberate choices:

* The empty text is one segment (an empty SMS is still sent as one message), with
  GSM-7 encoding, 0 units and 160 remaining.
* ``characters`` counts Unicode code points (``len(text)``). Twilio's calculator counts
  graphemes for UCS-2 and also keeps whole grapheme clusters (e.g. ZWJ emoji sequences)
  in one part; the standard library has no grapheme segmentation, so here only
  surrogate pairs are kept whole. The two differ only when a multi-code-point cluster
  straddles a 67-unit boundary.

:func:`smart_encode` mimics Twilio's "Smart Encoding", which transliterates common
Unicode look-alikes (curly quotes, dashes, odd spaces...) to GSM-7 before sending.

The module is pure (no I/O, standard library only) and built for a hot path: the common
cases run in C-level string and bytes operations without a per-character Python loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GSM7_BASIC",
    "GSM7_CHARACTERS",
    "GSM7_EXTENSION",
    "SMS_MAX_CHARACTERS",
    "Encoding",
    "SegmentInfo",
    "analyze",
    "count_segments",
    "is_gsm7",
    "smart_encode",
]

#: Twilio's hard limit on a message body (error 21617).
SMS_MAX_CHARACTERS = 1600

GSM7_SINGLE = 160
GSM7_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a message body is encoded and split into SMS segments."""

    encoding: Encoding
    #: Unicode code points in the text (``len(text)``).
    characters: int
    #: Septets for GSM-7 (extension characters count 2); UTF-16 code units for UCS-2
    #: (astral characters count 2).
    units: int
    #: Number of SMS parts; 1 for the empty text.
    segments: int
    #: Capacity of each part for this message: 160/153 (GSM-7) or 70/67 (UCS-2).
    per_segment: int
    #: Units still free in the last part.
    remaining: int
    #: Distinct characters (first-seen order) that forced UCS-2; empty for GSM-7.
    ucs2_characters: tuple[str, ...]


# GSM 03.38 default alphabet (basic set), in table order, without the escape code 0x1B.
_GSM7_BASIC_TEXT = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
# Extension table: escape + character, 2 septets each.
_GSM7_EXTENSION_TEXT = "\f^{}\\[~]|\u20ac"

GSM7_BASIC: frozenset[str] = frozenset(_GSM7_BASIC_TEXT)
GSM7_EXTENSION: frozenset[str] = frozenset(_GSM7_EXTENSION_TEXT)
GSM7_CHARACTERS: frozenset[str] = GSM7_BASIC | GSM7_EXTENSION

assert len(_GSM7_BASIC_TEXT) == len(GSM7_BASIC) == 127
assert len(GSM7_EXTENSION) == 10 and not GSM7_BASIC & GSM7_EXTENSION

# ASCII fast path, done on bytes: deleting every GSM-7 ASCII byte must leave nothing,
# and deleting the extension bytes tells how many escape pairs there are.
_GSM7_ASCII_BYTES = bytes(sorted(ord(c) for c in GSM7_CHARACTERS if ord(c) < 128))
_GSM7_EXT_ASCII_BYTES = bytes(sorted(ord(c) for c in GSM7_EXTENSION if ord(c) < 128))
_GSM7_EXT_TUPLE = tuple(sorted(GSM7_EXTENSION))

_GSM7_EXT_RE = re.compile("[" + re.escape(_GSM7_EXTENSION_TEXT) + "]")
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


def _pack(total: int, capacity: int, pair_starts: set[int]) -> tuple[int, int]:
    """Greedily fill parts of ``capacity`` units; return (parts, units in the last part).

    ``pair_starts`` holds the unit offsets at which a 2-unit unsplittable pair starts;
    a part that would end between the two units ends one unit early instead.
    """
    start = 0
    parts = 1
    while total - start > capacity:
        end = start + capacity
        if end - 1 in pair_starts:
            end -= 1
        start = end
        parts += 1
    return parts, total - start


def _pair_starts(text: str, pattern: re.Pattern[str]) -> set[int]:
    # The k-th 2-unit character (0-based) at code point index p starts at unit p + k.
    return {m.start() + k for k, m in enumerate(pattern.finditer(text))}


def is_gsm7(text: str) -> bool:
    """True when ``text`` can be sent as GSM-7 (basic and extension sets only)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _GSM7_ASCII_BYTES)
    return GSM7_CHARACTERS.issuperset(text)


def analyze(text: str) -> SegmentInfo:
    """Encoding, size and segment count of an SMS body, the way Twilio counts them."""
    n = len(text)
    ext = -1  # number of extension characters; -1 when the text is not GSM-7
    if text.isascii():
        raw = text.encode("ascii")
        if not raw.translate(None, _GSM7_ASCII_BYTES):
            ext = n - len(raw.translate(None, _GSM7_EXT_ASCII_BYTES))
    elif GSM7_CHARACTERS.issuperset(text):
        ext = sum(map(text.count, _GSM7_EXT_TUPLE))

    if ext >= 0:
        units = n + ext
        if units <= GSM7_SINGLE:
            return SegmentInfo(Encoding.GSM7, n, units, 1, GSM7_SINGLE, GSM7_SINGLE - units, ())
        if ext:
            parts, last = _pack(units, GSM7_MULTI, _pair_starts(text, _GSM7_EXT_RE))
        else:
            parts, last = -(-units // GSM7_MULTI), (units - 1) % GSM7_MULTI + 1
        return SegmentInfo(Encoding.GSM7, n, units, parts, GSM7_MULTI, GSM7_MULTI - last, ())

    bad = set(text).difference(GSM7_CHARACTERS)
    ucs2_chars = tuple(bad) if len(bad) == 1 else tuple(sorted(bad, key=text.index))
    units = len(text.encode("utf-16-le", "surrogatepass")) >> 1
    if units <= UCS2_SINGLE:
        return SegmentInfo(Encoding.UCS2, n, units, 1, UCS2_SINGLE, UCS2_SINGLE - units, ucs2_chars)
    if units != n:
        parts, last = _pack(units, UCS2_MULTI, _pair_starts(text, _ASTRAL_RE))
    else:
        parts, last = -(-units // UCS2_MULTI), (units - 1) % UCS2_MULTI + 1
    return SegmentInfo(Encoding.UCS2, n, units, parts, UCS2_MULTI, UCS2_MULTI - last, ucs2_chars)


def count_segments(text: str) -> int:
    """Number of SMS segments ``text`` is billed as (1 for the empty text)."""
    return analyze(text).segments


def _build_smart_table() -> dict[int, str]:
    groups: dict[str, str] = {
        # Double quotes and double primes.
        '"': "\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033\u2036\u02ba\u02ee\u275d\u275e\u301d\u301e",
        # Single quotes, primes, acute/grave accents, single angle quotes.
        "'": "\u2018\u2019\u201a\u201b\u00b4\u2032\u2035\u2039\u203a\u02b9\u02bb\u02bc"
        "\u02bd\u02c8\u02ca\u02cb\u275b\u275c`",
        # Hyphens and dashes, minus sign, bullets.
        "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\u2022\ufe58\ufe63",
        # Spaces (no-break, typographic, ideographic) and line/paragraph separators.
        " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
        "\u202f\u205f\u3000\u2028\u2029",
        # Invisible: BOM / zero-width no-break space, zero-width (non-)joiner and space,
        # word joiner, soft hyphen.
        "": "\ufeff\u200b\u200c\u200d\u2060\u00ad",
        "/": "\u00f7\u2044\u2215",
        ".": "\u2024\u3002\uff61",
        ",": "\u3001\uff64",
        "*": "\u2217",
        "~": "\u02dc\u223c",
        "^": "\u02c6",
    }
    table: dict[int, str] = {}
    for target, sources in groups.items():
        for ch in sources:
            table[ord(ch)] = target
    table.update(
        {
            0x2026: "...",  # HORIZONTAL ELLIPSIS
            0x2025: "..",  # TWO DOT LEADER
            0x203C: "!!",  # DOUBLE EXCLAMATION MARK
            0x2122: "TM",  # TRADE MARK SIGN
            0x00A9: "(c)",  # COPYRIGHT SIGN
            0x00AE: "(R)",  # REGISTERED SIGN
            0x00BC: "1/4",
            0x00BD: "1/2",
            0x00BE: "3/4",
        }
    )
    # Fullwidth ASCII forms U+FF01..U+FF5E map to ASCII '!'..'~' (the grave accent,
    # not in GSM-7, goes to an apostrophe like the ASCII one).
    for cp in range(0xFF01, 0xFF5F):
        table[cp] = table.get(cp - 0xFEE0, chr(cp - 0xFEE0))
    # Small form variants.
    small = {
        0xFE50: ",",
        0xFE51: ",",
        0xFE52: ".",
        0xFE54: ";",
        0xFE55: ":",
        0xFE56: "?",
        0xFE57: "!",
        0xFE59: "(",
        0xFE5A: ")",
        0xFE5B: "{",
        0xFE5C: "}",
        0xFE5F: "#",
        0xFE60: "&",
        0xFE61: "*",
        0xFE62: "+",
        0xFE64: "<",
        0xFE65: ">",
        0xFE66: "=",
        0xFE68: "\\",
        0xFE69: "$",
        0xFE6A: "%",
        0xFE6B: "@",
    }
    table.update(small)
    assert all(chr(cp) not in GSM7_CHARACTERS for cp in table)
    assert all(GSM7_CHARACTERS.issuperset(out) for out in table.values())
    return table


_SMART_TABLE = _build_smart_table()
_SMART_ASCII = frozenset(chr(cp) for cp in _SMART_TABLE if cp < 128)


def smart_encode(text: str) -> str:
    """Transliterate common Unicode look-alikes to GSM-7, like Twilio's Smart Encoding.

    Curly quotes, primes and angle quotes become ``"`` or ``'``; dashes, minus and
    bullets ``-``; ``…`` ``...``; typographic spaces a plain space; zero-width
    characters, the BOM and soft hyphens are dropped; ``™ © ®`` become ``TM (c) (R)``;
    fullwidth and small-form ASCII variants their ASCII counterpart. Any other character
    is left unchanged, so the result may still need UCS-2.
    """
    if text.isascii() and _SMART_ASCII.isdisjoint(text):
        return text
    return text.translate(_SMART_TABLE)
