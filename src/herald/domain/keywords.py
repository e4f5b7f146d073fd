"""Inbound keywords: carrier opt-out/opt-in/help words and a bot's own keyword rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Twilio's and the US carriers' lists (reference §5): one word, any case.
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})

OPT_OUT_REPLY = (
    "You have successfully been unsubscribed. You will not receive any more messages from "
    "this number. Reply START to resubscribe."
)
OPT_IN_REPLY = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for "
    "help. Reply STOP to unsubscribe."
)
DEFAULT_HELP = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."

MATCH_KINDS = ("exact", "regex")
MAX_PATTERN = 500


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def classify(body: str) -> Keyword | None:
    """The carrier keyword a text is, if it is exactly one (surrounding blanks and a final
    full stop or exclamation mark are forgiven, as people type them)."""
    word = body.strip().rstrip(".!").strip().upper()
    if not word or any(c.isspace() for c in word):
        return None
    if word in OPT_OUT:
        return Keyword.OPT_OUT
    if word in OPT_IN:
        return Keyword.OPT_IN
    if word in HELP:
        return Keyword.HELP
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    match: str
    pattern: str
    reply: str


class InvalidRule(ValueError):
    """A keyword rule that cannot be used; ``index`` and ``field`` say where."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field
        self.message = message


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Validated rules: ``{"match": "exact"|"regex", "pattern", "reply"}``."""
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        match = str(item.get("match") or "exact").lower()
        pattern = item.get("pattern")
        reply = item.get("reply")
        if match not in MATCH_KINDS:
            raise InvalidRule(i, "match", f"'match' must be one of: {', '.join(MATCH_KINDS)}.")
        if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_PATTERN:
            raise InvalidRule(
                i,
                "pattern",
                f"'pattern' must be a non-empty text of up to {MAX_PATTERN} characters.",
            )
        if not isinstance(reply, str) or not reply.strip() or len(reply) > 1600:
            raise InvalidRule(
                i, "reply", "'reply' must be a non-empty text of up to 1600 characters."
            )
        if match == "regex":
            try:
                re.compile(pattern)
            except re.error as e:
                raise InvalidRule(
                    i, "pattern", f"'pattern' is not a valid regular expression: {e}."
                ) from e
        rules.append(Rule(match, pattern, reply))
    return rules


def match_rule(rules: Sequence[Rule], body: str) -> str | None:
    """The reply of the first rule the text matches: exact ignores case and surrounding
    blanks; regex is searched case-insensitively anywhere in the text."""
    text = body.strip()
    for rule in rules:
        if rule.match == "exact":
            if text.casefold() == rule.pattern.strip().casefold():
                return rule.reply
        elif re.search(rule.pattern, text, re.IGNORECASE):
            return rule.reply
    return None
