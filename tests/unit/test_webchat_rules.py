"""The web chat's pure rules: visitor tokens, widget frames, receipt order."""

from __future__ import annotations

from typing import Any

import pytest

from herald.domain.webchat import (
    FrameError,
    Receipt,
    TokenCheck,
    VisitorText,
    check_token,
    parse_frame,
    receipt_moves,
    valid_visitor_id,
    visitor_token,
)


def test_tokens_bind_the_visitor_to_one_bot_and_one_secret() -> None:
    token = visitor_token("secret", "bot-1", "user-42", 2000)
    assert check_token("secret", "bot-1", "user-42", token, 1999) is TokenCheck.VALID
    assert check_token("secret", "bot-2", "user-42", token, 1999) is TokenCheck.INVALID
    assert check_token("secret", "bot-1", "user-43", token, 1999) is TokenCheck.INVALID
    assert check_token("other", "bot-1", "user-42", token, 1999) is TokenCheck.INVALID


def test_tokens_carry_their_expiry_and_expire() -> None:
    token = visitor_token("secret", "bot-1", "user-42", 2000)
    assert token.startswith("2000.")
    assert check_token("secret", "bot-1", "user-42", token, 2000) is TokenCheck.EXPIRED
    # A later expiry written into the token breaks its signature.
    longer = "9999" + token.removeprefix("2000")
    assert check_token("secret", "bot-1", "user-42", longer, 2000) is TokenCheck.INVALID


@pytest.mark.parametrize("token", ["", "0" * 64, ".abc", "１２.abc", "1" * 13 + ".x"])
def test_malformed_tokens_are_invalid(token: str) -> None:
    assert check_token("secret", "bot-1", "user-42", token, 0) is TokenCheck.INVALID


@pytest.mark.parametrize("visitor", ["user-42", "a", "x@example.com", "+14155552671", "v-Ab_9"])
def test_visitor_ids_that_travel_in_urls(visitor: str) -> None:
    assert valid_visitor_id(visitor)


@pytest.mark.parametrize("visitor", ["", "a b", "x" * 129, "é", "a/b", "a?b"])
def test_visitor_ids_refused(visitor: str) -> None:
    assert not valid_visitor_id(visitor)


def test_frames_the_widget_sends() -> None:
    assert parse_frame({"type": "text", "text": " hi ", "clientId": "c1"}) == VisitorText(
        "hi", "c1"
    )
    assert parse_frame({"type": "receipt", "id": 7, "status": "read"}) == Receipt(7, "read")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ([], "invalid_frame"),
        ({"type": "hello"}, "invalid_frame"),
        ({"type": "text", "text": "  ", "clientId": "c"}, "empty_text"),
        ({"type": "text", "text": "x" * 4001, "clientId": "c"}, "text_too_long"),
        ({"type": "text", "text": "hi"}, "invalid_client_id"),
        ({"type": "text", "text": "hi", "clientId": "c" * 65}, "invalid_client_id"),
        ({"type": "receipt", "id": True, "status": "read"}, "invalid_receipt"),
        ({"type": "receipt", "id": 0, "status": "read"}, "invalid_receipt"),
        ({"type": "receipt", "id": 3, "status": "seen"}, "invalid_receipt"),
    ],
)
def test_bad_frames_have_a_code(frame: Any, code: str) -> None:
    with pytest.raises(FrameError) as error:
        parse_frame(frame)
    assert error.value.code == code


def test_receipts_only_move_forward() -> None:
    assert receipt_moves(None, "delivered")
    assert receipt_moves("sent", "delivered")
    assert receipt_moves("delivered", "read")
    assert receipt_moves("sent", "read")
    assert not receipt_moves("read", "delivered")
    assert not receipt_moves("delivered", "delivered")
