"""E-mail address validation: one plain ASCII address, the domain in IDNA."""

from __future__ import annotations

import pytest

from herald.domain.email import MAX_ADDRESS_LENGTH, validate_email_address


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("ann@example.com", "ann@example.com"),
        ("ann.lee+news@mail.example.org", "ann.lee+news@mail.example.org"),
        ("ann@bücher.example", "ann@xn--bcher-kva.example"),
    ],
)
def test_a_plain_address_is_kept_with_an_ascii_domain(given: str, kept: str) -> None:
    assert validate_email_address(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("Ann <ann@example.com>", "is not a single plain e-mail address"),
        ("ann@example.com, bob@example.com", "is not a single plain e-mail address"),
        ("ann@example.com\r\nBcc: eve@example.com", "is not a single plain e-mail address"),
        ("ann", "is not a single plain e-mail address"),
        ("ann@@example.com", "is not a single plain e-mail address"),
        ("анна@example.com", "has a non-ASCII local part"),
        ("ann@example..com", "has an invalid domain"),
        ("ann@.example.com", "has an invalid domain"),
        ("ann@example.com.", "has an invalid domain"),
        ("a@" + "x" * MAX_ADDRESS_LENGTH, "is not a single plain e-mail address"),
    ],
)
def test_anything_else_is_refused_with_a_sentence(given: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        validate_email_address(given)
