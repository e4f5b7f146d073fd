"""Reading Twilio's answers: error bodies, Retry-After, message resources, status order."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from herald.channels.base import PermanentError, TransientError
from herald.channels.http import FormAnswer
from herald.channels.twilio import STATUS_MAP, STATUS_RANK, error_from_response, is_later_status


def answer(status: int, body: object, **headers: str) -> FormAnswer:
    return FormAnswer(status, "Too Many Requests", headers, json.dumps(body).encode())


THROTTLED = {"code": 20429, "message": "Too Many Requests", "status": 429}


@pytest.mark.parametrize("value", ["abc", "", "  ", "Mon, 99 Foo 2026", "nan", "inf", "-inf"])
def test_a_malformed_retry_after_is_ignored_not_a_crash(value: str) -> None:
    error = error_from_response(answer(429, THROTTLED, **{"Retry-After": value}))
    assert isinstance(error, TransientError)
    assert (error.code, error.retry_after) == ("20429", None)


def test_retry_after_in_seconds_or_as_a_date_is_kept_and_bounded() -> None:
    assert error_from_response(answer(429, THROTTLED, **{"Retry-After": "7"})).retry_after == 7
    assert error_from_response(answer(429, THROTTLED, **{"Retry-After": "-3"})).retry_after == 0
    huge = error_from_response(answer(429, THROTTLED, **{"Retry-After": "1e300"}))
    assert huge.retry_after == 86400
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    dated = error_from_response(answer(503, {}, **{"Retry-After": soon})).retry_after
    assert dated is not None and 20 < dated <= 30


def test_other_4xx_are_permanent_with_twilios_code() -> None:
    body = {"code": 21211, "message": "The 'To' number 555 is not a valid phone number."}
    error = error_from_response(answer(400, body))
    assert isinstance(error, PermanentError) and error.code == "21211"


def test_every_status_has_a_rank_and_reports_only_move_forward() -> None:
    assert set(STATUS_RANK) == set(STATUS_MAP)
    order = ["accepted", "queued", "sending", "sent", "delivered", "read"]
    for earlier, later in itertools.pairwise(order):
        assert is_later_status(earlier, later) and not is_later_status(later, earlier)
    assert not is_later_status("undelivered", "delivered")
    assert not is_later_status("delivered", "sent")
    assert is_later_status(None, "queued")
    assert not is_later_status("sent", "partially_delivered")  # unknown: never replaces
