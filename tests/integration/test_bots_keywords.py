"""The pure keyword rules (no I/O): carrier opt-out/opt-in/help words, a bot's keyword rules."""

from __future__ import annotations

import pytest

from herald.domain.keywords import InvalidRule, Keyword, classify, match_rule, parse_rules


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", " Stop ", "STOPALL", "unsubscribe", "Cancel", "END", "quit", "REVOKE",
     "optout", "STOP."],
)  # fmt: skip
def test_opt_out_words_in_any_case(body: str) -> None:
    assert classify(body) is Keyword.OPT_OUT


@pytest.mark.parametrize("body", ["START", "yes", "Unstop"])
def test_opt_in_words(body: str) -> None:
    assert classify(body) is Keyword.OPT_IN


@pytest.mark.parametrize("body", ["HELP", "info", "Help!"])
def test_help_words(body: str) -> None:
    assert classify(body) is Keyword.HELP


@pytest.mark.parametrize(
    "body", ["", "please stop", "STOP IT", "stopp", "don't stop", "yes please"]
)
def test_only_a_single_keyword_counts(body: str) -> None:
    assert classify(body) is None


def test_rules_match_exact_ignoring_case_then_regex_in_order() -> None:
    rules = parse_rules(
        [
            {"match": "exact", "pattern": "hours", "reply": "9 to 5"},
            {"match": "regex", "pattern": r"\border\s+\d+", "reply": "Looking it up"},
            {"pattern": "hi", "reply": "Hello!"},
        ]
    )
    assert match_rule(rules, "  HOURS ") == "9 to 5"
    assert match_rule(rules, "what hours?") is None
    assert match_rule(rules, "Where is ORDER 42 now") == "Looking it up"
    assert match_rule(rules, "Hi") == "Hello!"
    assert match_rule([], "hi") is None


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"match": "fuzzy", "pattern": "a", "reply": "b"}, "match"),
        ({"match": "exact", "pattern": "", "reply": "b"}, "pattern"),
        ({"match": "regex", "pattern": "(", "reply": "b"}, "pattern"),
        ({"match": "exact", "pattern": "a", "reply": ""}, "reply"),
        ({"match": "exact", "pattern": "a", "reply": "x" * 1601}, "reply"),
    ],
)
def test_invalid_rules_say_where(rule: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRule) as e:
        parse_rules([{"pattern": "ok", "reply": "ok"}, rule])
    assert (e.value.index, e.value.field) == (1, field)
