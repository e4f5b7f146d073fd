"""Finding links in message text and rewriting them to short ones.

What counts as a link (:func:`find_urls`):

* Only ``http://`` and ``https://`` (any letter case), not glued to a preceding word
  (``xhttp://`` is not a link). ``ftp:``, ``mailto:``, ``tel:`` and the like are left alone,
  and so is a bare ``www.example.com`` without a scheme: Herald cannot know which scheme the
  author meant, and rewriting text that is not unambiguously a link would change the message.
* A link runs until whitespace (any Unicode space), one of ``< > " `` ` or a typographic
  quote (``« » “ ” „ ‹ ›``), a control or format character (zero-width space...), or a
  symbol such as an emoji: these never appear unencoded in a real URL, and in SMS they
  usually sit right after one.
* Then trailing punctuation that ends sentences rather than URLs is dropped: ``. , ; : ! ?``
  ``…`` ``'`` ``*`` and their CJK/fullwidth forms, and closing ``) ] }`` that have no opening
  partner inside the link. So ``(see https://en.wikipedia.org/wiki/Pi_(letter)).`` yields the
  Wikipedia URL with its own balanced parentheses.
* The host must be a name (Unicode letters allowed, e.g. ``https://пример.рф/путь``) or an
  IPv6 literal in brackets, with an optional numeric port; ``http://`` alone is not a link.

The module is pure: no I/O, standard library only.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from collections.abc import Callable
from urllib.parse import quote

__all__ = [
    "BASE62",
    "CODE_PATTERN",
    "find_urls",
    "new_code",
    "rewrite_urls",
    "to_ascii_url",
]

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase

#: What a short-link code looks like in a URL path.
CODE_PATTERN = "[0-9A-Za-z]{7,16}"

# A scheme glued to a word ("xhttp://", "svn+https://") does not start a link.
_GLUED = re.compile(r"[\w+.\-]")
_ALNUM = re.compile(r"[^\W_]")
# Characters that end a link wherever they appear.
_TERMINATORS = r"\s<>\"`«»“”„‟‹›「」『』\x00-\x1f\x7f"
_HOST_CHAR = rf"(?:[\w\-.]|[^{_TERMINATORS}\x00-\x7f])"
_AUTHORITY = re.compile(
    rf"(?:[^{_TERMINATORS}/?#@]*@)?"  # userinfo
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_HOST_CHAR}+)"
    r"(?::\d{1,5}(?!\d))?"
)
_REST = re.compile(rf"[^{_TERMINATORS}]*")
# Unicode categories that end a link: symbols (emoji), format and control characters,
# surrogates, private use, unassigned, separators.
_STOP_CATEGORIES = frozenset({"So", "Sk", "Cf", "Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_TRAILING = frozenset(".,;:!?…'*。、，！？；：")
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _cut_at_symbols(candidate: str) -> str:
    if candidate.isascii():
        return candidate
    for i, ch in enumerate(candidate):
        if ord(ch) > 127 and unicodedata.category(ch) in _STOP_CATEGORIES:
            return candidate[:i]
    return candidate


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        opener = _CLOSERS.get(last)
        if opener is not None:
            if url.count(last) <= url.count(opener):
                break
        elif last not in _TRAILING:
            break
        url = url[:-1]
    return url


def _has_host(rest: str) -> bool:
    authority = _AUTHORITY.match(rest)
    if authority is None:
        return False
    host = authority.group("host")
    return host.startswith("[") or _ALNUM.search(host) is not None


def _scheme_start(text: str, sep: int) -> int:
    """Where the http(s) scheme before the ``://`` at ``sep`` starts, or -1."""
    if text[sep - 5 : sep].lower() == "https":
        start = sep - 5
    elif text[sep - 4 : sep].lower() == "http":
        start = sep - 4
    else:
        return -1
    if start > 0 and _GLUED.match(text, start - 1):
        return -1
    return start


def find_urls(text: str) -> list[tuple[int, int, str]]:
    """Every http(s) link in ``text`` as ``(start, end, url)``, with ``text[start:end] == url``."""
    found: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        # str.find is several times faster than a regex with a look-behind, and most texts
        # have no link at all.
        sep = text.find("://", pos)
        if sep < 0:
            return found
        scheme_end = sep + 3
        start = _scheme_start(text, sep)
        authority = _AUTHORITY.match(text, scheme_end) if start >= 0 else None
        if authority is None:
            pos = scheme_end
            continue
        end = authority.end()
        # After the host only a path, query or fragment continues the link: in
        # "https://a.com,https://b.com" the comma ends the first one.
        if end < len(text) and text[end] in "/?#":
            rest = _REST.match(text, end)
            end = rest.end() if rest else end
        url = _trim(text[start:scheme_end] + _cut_at_symbols(text[scheme_end:end]))
        if start + len(url) >= authority.end():
            host = authority.group("host")
            ok = host.startswith("[") or _ALNUM.search(host) is not None
        else:  # trimming ate into the host ("https://a." -> "https://a")
            ok = _has_host(url[scheme_end - start :])
        if ok:
            found.append((start, start + len(url), url))
            pos = start + len(url)
        else:
            pos = scheme_end


def rewrite_urls(text: str, make_short: Callable[[str], str]) -> tuple[str, list[tuple[str, str]]]:
    """Replace every link in ``text`` by ``make_short(url)``.

    Returns the new text and the ``(short_url, original)`` pairs, one per distinct link: a link
    that appears twice is shortened once and both occurrences get the same short URL.
    """
    urls = find_urls(text)
    if not urls:
        return text, []
    shortened: dict[str, str] = {}
    parts: list[str] = []
    last = 0
    for start, end, url in urls:
        short = shortened.get(url)
        if short is None:
            short = shortened[url] = make_short(url)
        parts.append(text[last:start])
        parts.append(short)
        last = end
    parts.append(text[last:])
    return "".join(parts), [(short, url) for url, short in shortened.items()]


def new_code(length: int = 8) -> str:
    """A random base62 code from the system's CSPRNG (62**8 ≈ 2.2e14 codes for 8 characters)."""
    # One draw of the whole number, then its base62 digits: uniform, and far cheaper than
    # one secrets.choice() per character.
    n = secrets.randbelow(62**length)
    digits = []
    for _ in range(length):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    return "".join(digits)


_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


def to_ascii_url(url: str) -> str:
    """``url`` as it may go in an HTTP header: IDNA (punycode) host, UTF-8 percent-encoding."""
    if url.isascii():
        return url
    scheme, sep, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, host_port = authority.rpartition("@")
    host, colon, port = host_port, "", ""
    if not host_port.startswith("[") and ":" in host_port:
        host, colon, port = host_port.rpartition(":")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = quote(host, safe=_URL_SAFE)
    return (
        scheme
        + sep
        + quote(userinfo, safe=_URL_SAFE)
        + at
        + ascii_host
        + colon
        + port
        + quote(tail, safe=_URL_SAFE)
    )
