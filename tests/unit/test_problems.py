"""The one problem collector: the 422 it raises under each of its two rules."""

from __future__ import annotations

import pytest

from herald.errors import ValidationFailed
from herald.services.problems import Problems
from herald.services.templates.validation import template_problems


def raised(problems: Problems) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as e:
        problems.raise_if_any()
    return e.value


def test_nothing_collected_raises_nothing() -> None:
    Problems().raise_if_any()
    template_problems().raise_if_any()


def test_a_request_says_a_repeated_problem_once_and_names_one_code_only_when_alone() -> None:
    problems = Problems()
    problems.add("messages[0].text", "Too long.", "field_too_long")
    problems.add("messages[0].text", "Too long.", "field_too_long")
    assert raised(problems).code == "field_too_long"
    problems.add("messages[1].text", "Too long.", "field_too_long")
    error = raised(problems)
    assert error.code == "validation_failed"
    assert error.message == "messages[0].text: Too long. (and 1 more problems)"
    assert error.details == {"errors": problems.items}


def test_templates_count_every_occurrence_and_keep_a_shared_code() -> None:
    problems = template_problems()
    problems.add("channels", "No 'viber' channel.", "unknown_channel")
    problems.add("channels", "No 'viber' channel.", "unknown_channel")
    error = raised(problems)
    assert error.code == "unknown_channel"
    assert len(error.details["errors"]) == 2
    problems.add("name", "A name is needed.", "invalid_template_name")
    assert raised(problems).code == "validation_failed"


def test_a_syntax_error_is_also_placed_at_the_top_level() -> None:
    problems = template_problems()
    problems.add("name", "A name is needed.", "invalid_template_name")
    problems.add(
        "channels.sms.text", "line 1, column 12: oops", "template_syntax_error", line=1, column=12
    )
    details = raised(problems).details
    assert (details["field"], details["line"], details["column"]) == ("channels.sms.text", 1, 12)
    assert details["errors"][1]["line"] == 1
