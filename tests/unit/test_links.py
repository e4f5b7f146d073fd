"""Finding and rewriting links in SMS text: a corpus of the tricky cases."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.links import (
    BASE62,
    CODE_PATTERN,
    find_urls,
    new_code,
    rewrite_urls,
    to_ascii_url,
)
from herald.domain.segments import analyze
from herald.services.short_links import PlannedLink, replace_codes, shorten_text

CORPUS: list[tuple[str, list[str]]] = [
    # Trailing punctuation belongs to the sentence.
    ("Visit https://example.com.", ["https://example.com"]),
    ("Visit https://example.com, then", ["https://example.com"]),
    ("Is it https://example.com/a?", ["https://example.com/a"]),
    ("Go: https://example.com/a!", ["https://example.com/a"]),
    ("See https://example.com/a; ok", ["https://example.com/a"]),
    ("See https://example.com/a:", ["https://example.com/a"]),
    ("Wait https://example.com/a...", ["https://example.com/a"]),
    ("Wait https://example.com/a…", ["https://example.com/a"]),
    ("End https://example.com/path/", ["https://example.com/path/"]),
    # Parentheses: balanced ones are part of the URL, unbalanced ones are not.
    ("(see https://example.com/a)", ["https://example.com/a"]),
    ("(https://example.com)", ["https://example.com"]),
    (
        "https://en.wikipedia.org/wiki/Pi_(letter)",
        ["https://en.wikipedia.org/wiki/Pi_(letter)"],
    ),
    (
        "(see https://en.wikipedia.org/wiki/Pi_(letter)).",
        ["https://en.wikipedia.org/wiki/Pi_(letter)"],
    ),
    (
        "https://en.wikipedia.org/wiki/A_(b)_(c)",
        ["https://en.wikipedia.org/wiki/A_(b)_(c)"],
    ),
    ("[link](https://example.com/a)", ["https://example.com/a"]),
    ("[https://example.com/a]", ["https://example.com/a"]),
    ("{https://example.com/a}", ["https://example.com/a"]),
    ("https://example.com/a?b=[1]", ["https://example.com/a?b=[1]"]),
    # Quotes and angle brackets.
    ('"https://example.com/a"', ["https://example.com/a"]),
    ("'https://example.com/a'", ["https://example.com/a"]),
    ("«https://example.com/a»", ["https://example.com/a"]),
    ("“https://example.com/a”", ["https://example.com/a"]),
    ("<https://example.com/a>", ["https://example.com/a"]),
    ("https://example.com/it's-here", ["https://example.com/it's-here"]),
    ("**https://example.com**", ["https://example.com"]),
    # Internationalised names and paths, punycode, ports, queries, fragments.
    ("Сайт: https://пример.рф/путь?x=да.", ["https://пример.рф/путь?x=да"]),
    ("https://xn--e1afmkfd.xn--p1ai/", ["https://xn--e1afmkfd.xn--p1ai/"]),
    ("https://उदाहरण.भारत/", ["https://उदाहरण.भारत/"]),
    ("https://例子.测试。", ["https://例子.测试"]),
    ("http://localhost:8080/x", ["http://localhost:8080/x"]),
    ("http://127.0.0.1:8000/healthz", ["http://127.0.0.1:8000/healthz"]),
    ("http://[::1]:8080/x]", ["http://[::1]:8080/x"]),
    ("https://example.com:8443", ["https://example.com:8443"]),
    (
        "https://example.com/p?a=1&b=2#frag, then",
        ["https://example.com/p?a=1&b=2#frag"],
    ),
    ("https://example.com/%D0%BF", ["https://example.com/%D0%BF"]),
    ("https://user:pw@example.com/p", ["https://user:pw@example.com/p"]),
    ("HTTPS://EXAMPLE.COM/A", ["HTTPS://EXAMPLE.COM/A"]),
    # Several links.
    ("a https://a.com b http://b.org/c!", ["https://a.com", "http://b.org/c"]),
    ("https://a.com,https://b.com", ["https://a.com", "https://b.com"]),
    ("https://a.com/?next=https://b.com", ["https://a.com/?next=https://b.com"]),
    ("https://a.com\nhttps://b.com", ["https://a.com", "https://b.com"]),
    # Where a link stops.
    ("Order https://shop.ru/o/1🎉 ok", ["https://shop.ru/o/1"]),
    ("https://example.com/a\u200bb", ["https://example.com/a"]),
    ("https://example.com/a\u00a0b", ["https://example.com/a"]),
    ("https://example.com:abc/", ["https://example.com"]),
    # Not links.
    ("http://", []),
    ("http:// alone", []),
    ("https://.", []),
    ("https://-/", []),
    ("ftp://example.com/file", []),
    ("mailto:someone@example.com", []),
    ("tel:+15551234567", []),
    ("www.example.com", []),
    ("xhttps://example.com", []),
    ("https:/example.com", []),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_corpus(text: str, expected: list[str]) -> None:
    found = find_urls(text)
    assert [url for _, _, url in found] == expected
    for start, end, url in found:
        assert text[start:end] == url


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 30


def test_rewrite_keeps_the_rest_and_shortens_each_distinct_link_once() -> None:
    calls: list[str] = []

    def short(url: str) -> str:
        calls.append(url)
        return f"S{len(calls)}"

    text, pairs = rewrite_urls("a https://x.com, b (https://x.com) c https://y.com/z.", short)
    assert text == "a S1, b (S1) c S2."
    assert pairs == [("S1", "https://x.com"), ("S2", "https://y.com/z")]
    assert calls == ["https://x.com", "https://y.com/z"]
    assert rewrite_urls("no links here", short) == ("no links here", [])


def test_new_code_is_base62() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 8 and re.fullmatch(CODE_PATTERN, c) for c in codes)
    assert set("".join(codes)) <= set(BASE62)
    assert len(new_code(12)) == 12


def test_shorten_text_before_counting_segments() -> None:
    long_url = "https://example.com/" + "very-long-path/" * 20 + "?utm_source=sms"
    text = f"Your order ships today: {long_url} Thanks!"
    assert analyze(text).segments == 3
    short_text, links = shorten_text(text, "https://hrld.io")
    assert links == [PlannedLink(links[0].code, long_url)]
    assert short_text == f"Your order ships today: https://hrld.io/{links[0].code} Thanks!"
    assert analyze(short_text).segments == 1


def test_shorten_text_codes_are_unique_within_a_text() -> None:
    text = " ".join(f"https://example.com/{i}" for i in range(200))
    short_text, links = shorten_text(text, "http://h")
    assert len({link.code for link in links}) == 200
    assert short_text.count("http://h/") == 200


def test_replace_codes_keeps_length() -> None:
    text = "a http://h/AAAAAAAA b http://h/BBBBBBBB"
    out = replace_codes(text, "http://h", {"AAAAAAAA": "CCCCCCCC"})
    assert out == "a http://h/CCCCCCCC b http://h/BBBBBBBB"
    assert len(out) == len(text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=c", "https://example.com/a?b=c"),
        (
            "https://пример.рф/путь?x=да#я",
            "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C?x=%D0%B4%D0%B0#%D1%8F",
        ),
        ("https://пример.рф:8443", "https://xn--e1afmkfd.xn--p1ai:8443"),
        ("https://example.com/%D0%BF/п", "https://example.com/%D0%BF/%D0%BF"),
    ],
)
def test_to_ascii_url(url: str, expected: str) -> None:
    assert to_ascii_url(url) == expected
    assert to_ascii_url(url).isascii()


@given(st.text())
def test_find_urls_never_crashes_and_slices_match(text: str) -> None:
    previous_end = 0
    for start, end, url in find_urls(text):
        assert text[start:end] == url
        assert start >= previous_end
        assert url.lower().startswith(("http://", "https://"))
        previous_end = end


@given(st.lists(st.sampled_from(["x ", "https://a.com/b ", "(", ")", ".", "«", "http://"])))
def test_rewrite_is_identity_outside_links(parts: list[str]) -> None:
    text = "".join(parts)
    out, pairs = rewrite_urls(text, lambda url: "@")
    assert out.replace("@", "") == "".join(
        text[i] for i in range(len(text)) if not any(s <= i < e for s, e, _ in find_urls(text))
    )
    assert len(pairs) == len({u for _, _, u in find_urls(text)})
