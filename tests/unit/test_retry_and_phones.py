"""Retry timing and phone normalisation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.retry import RetryPolicy


@given(st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=2**32))
def test_delay_is_within_the_exponential_cap(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=2.0, max_seconds=300.0)
    delay = policy.delay(attempt, rng=random.Random(seed))
    assert delay is not None
    assert 0 <= delay <= min(300.0, 2.0 * 2 ** (attempt - 1))


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(2) is not None
    assert policy.delay(3) is None


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, max_seconds=2.0)
    assert policy.delay(1, retry_after=30.0) == 30.0


def test_full_jitter_spreads_a_burst() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1.0, max_seconds=100.0)
    rng = random.Random(1)
    delays = {round(policy.delay(5, rng=rng) or 0, 3) for _ in range(50)}
    assert len(delays) > 40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155552671", "+14155552671"),
        (" +1 (415) 555-2671 ", "+14155552671"),
        ("+79161234567", "+79161234567"),
        ("+15005550006", "+15005550006"),  # Twilio's magic test number
        ("+447911123456", "+447911123456"),
        # TWIN's own form: E.164 digits without the +.
        ("79161234567", "+79161234567"),
        ("14155552671", "+14155552671"),
        ("15005550006", "+15005550006"),
    ],
)
def test_valid_numbers_become_e164(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


@pytest.mark.parametrize("raw", ["", "555", "+1", "hello", "+999123456789", "+1415555267100"])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(raw)


def test_national_format_needs_a_region() -> None:
    assert to_e164("8 916 123-45-67", "RU") == "+79161234567"
    with pytest.raises(InvalidPhone):
        to_e164("8 916 123-45-67")


@pytest.mark.parametrize(
    "national",
    [
        "4155552671",  # a US number without its 1: not Switzerland's +41 55…
        "89161234567",  # Russian, with the trunk 8
        "07911123456",  # British, with the trunk 0
        "9876543210",  # Indian, 10 digits: not Iran's +98…
        "11987654321",  # Brazilian, with its area code
    ],
)
def test_digits_without_a_plus_are_never_read_as_another_country(national: str) -> None:
    with pytest.raises(InvalidPhone, match="no country code"):
        to_e164(national)
