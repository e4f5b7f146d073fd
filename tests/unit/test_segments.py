"""Tests for herald.domain.segments (SMS encoding and segment counting).

The property tests compare ``analyze`` with a deliberately naive reference written
independently below: its own GSM 03.38 table (code points in table order), a list of
per-character unit costs, and parts filled one character at a time.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.domain.segments import (
    GSM7_BASIC,
    GSM7_CHARACTERS,
    GSM7_EXTENSION,
    SMS_MAX_CHARACTERS,
    Encoding,
    SegmentInfo,
    analyze,
    count_segments,
    is_gsm7,
    smart_encode,
)

# ---------------------------------------------------------------------------
# Independent reference implementation
# ---------------------------------------------------------------------------

# GSM 03.38 default alphabet: ASCII part as ranges, the rest as code points in table
# order. The escape code (0x1B in the table) is not a character you can send.
REF_BASIC: frozenset[int] = frozenset(
    [
        0x0A, 0x0D, 0x5F, *range(0x20, 0x5B), *range(0x61, 0x7B),  # ASCII part
        0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7,  # £ ¥ è é ù ì ò Ç
        0x00D8, 0x00F8, 0x00C5, 0x00E5,  # Ø ø Å å
        0x0394, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, 0x03A3, 0x0398, 0x039E,  # Greek
        0x00C6, 0x00E6, 0x00DF, 0x00C9,  # Æ æ ß É
        0x00A4, 0x00A1,  # ¤ ¡
        0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,  # Ä Ö Ñ Ü §
        0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,  # ¿ ä ö ñ ü à
    ]
)  # fmt: skip
# Extension table: form feed ^ { } \ [ ~ ] | €
REF_EXT: frozenset[int] = frozenset([0x0C, 0x5E, 0x7B, 0x7D, 0x5C, 0x5B, 0x7E, 0x5D, 0x7C, 0x20AC])


def reference_analyze(text: str) -> SegmentInfo:
    gsm = all(ord(c) in REF_BASIC or ord(c) in REF_EXT for c in text)
    if gsm:
        costs = [2 if ord(c) in REF_EXT else 1 for c in text]
        single, multi = 160, 153
        encoding = Encoding.GSM7
        forcing: list[str] = []
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, multi = 70, 67
        encoding = Encoding.UCS2
        forcing = []
        for c in text:
            if ord(c) not in REF_BASIC and ord(c) not in REF_EXT and c not in forcing:
                forcing.append(c)
    total = sum(costs)
    if total <= single:
        return SegmentInfo(encoding, len(text), total, 1, single, single - total, tuple(forcing))
    parts = [0]
    for cost in costs:
        if parts[-1] + cost > multi:
            parts.append(0)
        parts[-1] += cost
    return SegmentInfo(
        encoding, len(text), total, len(parts), multi, multi - parts[-1], tuple(forcing)
    )


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

GSM_BASIC_CHARS = sorted(chr(cp) for cp in REF_BASIC)
GSM_EXT_CHARS = sorted(chr(cp) for cp in REF_EXT)
CYRILLIC = [chr(cp) for cp in range(0x0410, 0x0450)]
EMOJI = ["\U0001f600", "\U0001f389", "\U0001f69a", "\U0001f44d", "\U0001f1fa", "\U0001d11e"]
ASCII_ALL = [chr(cp) for cp in range(0x80)]  # includes `, ESC, TAB and other non-GSM controls
LATIN_NOT_GSM = ["ç", "á", "í", "ó", "ú", "ê", "õ", "Ã", "ł", "ő"]

gsm_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_BASIC_CHARS), st.sampled_from(GSM_BASIC_CHARS),
        st.sampled_from(GSM_BASIC_CHARS), st.sampled_from(GSM_EXT_CHARS),
    ),
    max_size=700,
)  # fmt: skip
ucs2_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(CYRILLIC), st.sampled_from(EMOJI), st.sampled_from(GSM_BASIC_CHARS)
    ),
    max_size=300,
)
mixed_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_BASIC_CHARS),
        st.sampled_from(GSM_EXT_CHARS),
        st.sampled_from(CYRILLIC),
        st.sampled_from(EMOJI),
        st.sampled_from(ASCII_ALL),
        st.sampled_from(LATIN_NOT_GSM),
    ),
    max_size=400,
)
any_text = st.one_of(gsm_text, ucs2_text, mixed_text, st.text(max_size=300))

PROPERTY_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(any_text)
def test_analyze_matches_reference(text: str) -> None:
    assert analyze(text) == reference_analyze(text)


@PROPERTY_SETTINGS
@given(
    prefix=st.integers(min_value=140, max_value=165),
    special=st.sampled_from(GSM_EXT_CHARS),
    repeat=st.integers(min_value=1, max_value=12),
    filler=st.sampled_from(["a", "é", "Ω"]),
)
def test_escape_pairs_near_boundaries_match_reference(
    prefix: int, special: str, repeat: int, filler: str
) -> None:
    # Extension characters at a fixed stride put an escape pair on many part boundaries.
    text = (filler * prefix + special) * repeat
    assert analyze(text) == reference_analyze(text)


@PROPERTY_SETTINGS
@given(
    prefix=st.integers(min_value=55, max_value=72),
    emoji=st.sampled_from(EMOJI),
    repeat=st.integers(min_value=1, max_value=12),
    filler=st.sampled_from(["a", "ж"]),
)
def test_astral_chars_near_boundaries_match_reference(
    prefix: int, emoji: str, repeat: int, filler: str
) -> None:
    text = (filler * prefix + emoji) * repeat
    assert analyze(text) == reference_analyze(text)


@PROPERTY_SETTINGS
@given(any_text)
def test_invariants(text: str) -> None:
    info = analyze(text)
    assert info.characters == len(text)
    assert count_segments(text) == info.segments >= 1
    assert is_gsm7(text) == (info.encoding is Encoding.GSM7)
    assert (info.ucs2_characters == ()) == (info.encoding is Encoding.GSM7)
    assert len(set(info.ucs2_characters)) == len(info.ucs2_characters)
    if info.encoding is Encoding.GSM7:
        assert info.units == len(text) + sum(c in GSM7_EXTENSION for c in text)
        single, multi = 160, 153
    else:
        assert info.units == len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if info.segments == 1:
        assert info.per_segment == single
        assert 0 <= info.remaining == single - info.units
    else:
        assert info.per_segment == multi
        assert 0 <= info.remaining < multi
        # At least ceil(units / multi) parts; each part but the last loses at most 1 unit.
        assert info.segments * multi >= info.units + info.remaining
        assert info.units > single


@PROPERTY_SETTINGS
@given(any_text)
def test_smart_encode_is_idempotent_and_never_adds_ucs2_characters(text: str) -> None:
    encoded = smart_encode(text)
    assert smart_encode(encoded) == encoded
    before = set(analyze(text).ucs2_characters)
    after = set(analyze(encoded).ucs2_characters)
    assert after <= before


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def test_tables_match_independent_gsm_0338_table() -> None:
    assert {ord(c) for c in GSM7_BASIC} == REF_BASIC
    assert {ord(c) for c in GSM7_EXTENSION} == REF_EXT
    assert len(GSM7_BASIC) == 127  # 128 table positions minus the escape code
    assert GSM7_CHARACTERS == GSM7_BASIC | GSM7_EXTENSION
    assert isinstance(GSM7_BASIC, frozenset)


# ---------------------------------------------------------------------------
# Exact examples
# ---------------------------------------------------------------------------


def test_empty_text_is_one_gsm7_segment() -> None:
    assert analyze("") == SegmentInfo(Encoding.GSM7, 0, 0, 1, 160, 160, ())
    assert count_segments("") == 1


@pytest.mark.parametrize(
    ("length", "segments", "per_segment", "remaining"),
    [
        (1, 1, 160, 159),
        (160, 1, 160, 0),
        (161, 2, 153, 145),
        (153 * 2, 2, 153, 0),
        (307, 3, 153, 152),
        (SMS_MAX_CHARACTERS, 11, 153, 153 * 11 - 1600),
    ],
)
def test_gsm7_lengths(length: int, segments: int, per_segment: int, remaining: int) -> None:
    info = analyze("a" * length)
    assert info.encoding is Encoding.GSM7
    assert (info.characters, info.units) == (length, length)
    assert (info.segments, info.per_segment, info.remaining) == (segments, per_segment, remaining)


def test_1600_gsm7_characters_is_11_segments() -> None:
    assert SMS_MAX_CHARACTERS == 1600
    assert count_segments("Hello, world! " * 114 + "abcd") == 11


@pytest.mark.parametrize(
    ("length", "segments", "per_segment", "remaining"),
    [(70, 1, 70, 0), (71, 2, 67, 63), (134, 2, 67, 0), (135, 3, 67, 66)],
)
def test_ucs2_lengths(length: int, segments: int, per_segment: int, remaining: int) -> None:
    info = analyze("ж" * length)
    assert info.encoding is Encoding.UCS2
    assert (info.characters, info.units) == (length, length)
    assert (info.segments, info.per_segment, info.remaining) == (segments, per_segment, remaining)
    assert info.ucs2_characters == ("ж",)


def test_extension_char_at_153rd_position_moves_to_next_part() -> None:
    # Part 1 can hold 153 septets, but the euro's escape pair would occupy septets
    # 153 and 154, so part 1 ends at 152 and the pair opens part 2.
    info = analyze("a" * 152 + "€" + "a" * 20)
    assert info.units == 174
    assert info.segments == 2
    assert info.remaining == 153 - (2 + 20)


def test_escape_pair_no_split_rule_changes_the_count() -> None:
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: ceil(306 / 153) would say 2
    info = analyze(text)
    assert info.units == 306
    assert info.segments == 3  # 152 | € + 151 | 1
    assert info.remaining == 152
    # The same septet count without the boundary problem fits in 2 parts.
    assert analyze("€" + "a" * 304).segments == 2


def test_extension_char_ending_exactly_at_boundary_stays() -> None:
    info = analyze("a" * 151 + "€" + "a" * 20)  # pair occupies septets 152-153
    assert (info.segments, info.remaining) == (2, 153 - 20)


def test_emoji_at_67_unit_boundary_moves_to_next_part() -> None:
    info = analyze("x" * 66 + "\U0001f600" + "x" * 10)
    assert info.encoding is Encoding.UCS2
    assert (info.characters, info.units) == (77, 78)
    assert info.segments == 2
    assert info.remaining == 67 - (2 + 10)
    assert info.ucs2_characters == ("\U0001f600",)


def test_surrogate_pair_no_split_rule_changes_the_count() -> None:
    info = analyze("x" * 66 + "\U0001f600" + "x" * 66)  # 134 units: ceil would say 2
    assert (info.units, info.segments, info.remaining) == (134, 3, 66)


def test_35_emoji_fit_one_segment_36_do_not() -> None:
    assert analyze("\U0001f600" * 35) == SegmentInfo(
        Encoding.UCS2, 35, 70, 1, 70, 0, ("\U0001f600",)
    )
    info = analyze("\U0001f600" * 36)
    assert (info.units, info.segments, info.remaining) == (72, 2, 67 - 6)  # 33 emoji | 3 emoji


def test_euro_is_gsm7_extension_not_ucs2() -> None:
    info = analyze("€")
    assert info == SegmentInfo(Encoding.GSM7, 1, 2, 1, 160, 158, ())
    assert is_gsm7("Price: 5€ {approx} [ref] ~ | \\ ^ \f")


@pytest.mark.parametrize("char", ["é", "É", "Ç", "ñ", "Ü", "ß", "Δ", "Ω", "¿", "¡", "§", "¤"])
def test_gsm7_basic_accented_and_greek(char: str) -> None:
    info = analyze(char)
    assert (info.encoding, info.units) == (Encoding.GSM7, 1)


@pytest.mark.parametrize(
    "char",
    [
        "ç",  # only capital Ç is in the basic set
        "á",
        "ê",
        "`",
        "\t",
        "\x1b",  # the escape code is not sendable text
        "\u2126",  # OHM SIGN looks like Ω but is not Greek capital omega
        "\u00a0",
        "’",
    ],
)
def test_characters_outside_gsm7_force_ucs2(char: str) -> None:
    info = analyze("Hello " + char)
    assert info.encoding is Encoding.UCS2
    assert info.ucs2_characters == (char,)
    assert not is_gsm7(char)


def test_cyrillic_forces_ucs2_and_is_listed_in_first_seen_order() -> None:
    info = analyze("Hi Анна, привет!")
    assert info.encoding is Encoding.UCS2
    assert info.units == 16
    assert (info.per_segment, info.remaining) == (70, 54)
    assert info.ucs2_characters == ("А", "н", "а", "п", "р", "и", "в", "е", "т")


def test_lone_surrogate_counts_one_unit() -> None:
    info = analyze("a\ud83d")
    assert (info.encoding, info.units, info.ucs2_characters) == (Encoding.UCS2, 2, ("\ud83d",))


def test_segment_info_is_frozen() -> None:
    info = analyze("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.segments = 2  # type: ignore[misc]
    assert [str(e) for e in Encoding] == ["GSM-7", "UCS-2"]


# ---------------------------------------------------------------------------
# Smart encoding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "\u201cQuoted\u201d \u201eLow\u201c \u00abGuillemets\u00bb 5\u2033",
            '"Quoted" "Low" "Guillemets" 5"',
        ),
        (
            "\u2018it\u2019s\u2019 \u201aa\u2019 caf\u00b4 5\u2032 \u2039x\u203a",
            "'it's' 'a' caf' 5' 'x'",
        ),
        ("a\u2013b\u2014c\u2010d\u2011e\u2012f\u2212g", "a-b-c-d-e-f-g"),
        ("Wait\u2026", "Wait..."),
        ("a\u00a0b\u2002c\u200ad\u202fe\u205ff\u3000g", "a b c d e f g"),
        ("\ufeffzero\u200bwidth\u200cjoin\u200ders", "zerowidthjoiners"),
        ("\u2022 item", "- item"),
        ("Brand\u2122 \u00a9 2024 \u00ae", "BrandTM (c) 2024 (R)"),
        ("\uff28\uff49\uff01", "Hi!"),
        ("back`tick", "back'tick"),
        ("plain GSM text, é € {}", "plain GSM text, é € {}"),
        ("Привет 😀", "Привет 😀"),  # no mapping: left as is
        ("", ""),
    ],
)
def test_smart_encode_examples(text: str, expected: str) -> None:
    assert smart_encode(text) == expected


def test_smart_encode_turns_ucs2_into_gsm7_and_saves_segments() -> None:
    text = (
        "\u201cYour order\u201d is on its way \u2014 it\u2019ll arrive Tuesday\u2026 "
        "Questions? Reply HELP. \u2022 Track: example.com/t/123 \u2022 Thanks\u00a0for "
        "shopping with Acme\u2122!"
    )
    before = analyze(text)
    assert before.encoding is Encoding.UCS2
    assert before.segments == 2
    encoded = smart_encode(text)
    after = analyze(encoded)
    assert after.encoding is Encoding.GSM7
    assert after.segments == 1
    assert encoded.startswith('"Your order" is on its way - it\'ll arrive Tuesday... ')
    assert encoded.endswith("Thanks for shopping with AcmeTM!")


def test_smart_encode_leaves_unmapped_characters() -> None:
    info = analyze(smart_encode("\u201cHi\u201d \u0436"))
    assert info.encoding is Encoding.UCS2
    assert info.ucs2_characters == ("\u0436",)
