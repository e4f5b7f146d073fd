"""An answer not in the provider's own error format never becomes a tenant-visible message."""

from __future__ import annotations

import json

import httpx
import pytest

from herald.channels import telegram, twilio, whatsapp_meta
from herald.channels.base import TransientError
from herald.channels.http import FormAnswer

SECRET = "root:hunter2 at db.internal"
BODIES = [
    json.dumps({"message": SECRET}),
    json.dumps({"error": {"detail": SECRET}, "description": 7}),
    json.dumps({"code": "E1", "message": SECRET}),
    json.dumps([SECRET]),
    f"<html><body>{SECRET}</body></html>",
    SECRET,
]


def leaked(error: Exception) -> bool:
    return any(SECRET in str(v) for v in vars(error).values()) or SECRET in str(error)


@pytest.mark.parametrize("body", BODIES)
def test_twilio(body: str) -> None:
    answer = FormAnswer(500, SECRET, {}, body.encode())
    error = twilio.error_from_response(answer)
    assert error.message == "Twilio answered HTTP 500 with a body that is not Twilio's"
    assert isinstance(error, TransientError) and error.code == "http_500"
    assert not leaked(error)


@pytest.mark.parametrize("body", BODIES)
def test_telegram(body: str) -> None:
    response = httpx.Response(502, content=body.encode(), extensions={"reason_phrase": b"x"})
    error = telegram.error_from_response(response)
    assert error.message == "Telegram answered HTTP 502 with a body that is not Telegram's"
    assert not leaked(error)


@pytest.mark.parametrize("body", BODIES)
def test_meta(body: str) -> None:
    error = whatsapp_meta.error_from_response(httpx.Response(400, content=body.encode()))
    assert error.message == "Meta answered HTTP 400 with a body that is not Meta's"
    assert error.code == "http_400"
    assert not leaked(error)


def test_the_providers_own_errors_are_kept() -> None:
    answer = FormAnswer(400, "Bad Request", {}, b'{"code": 21211, "message": "Invalid To"}')
    assert twilio.error_from_response(answer).message == "Invalid To"
    tg = httpx.Response(400, json={"ok": False, "error_code": 400, "description": "chat not found"})
    assert telegram.error_from_response(tg).code == "telegram_chat_not_found"
    meta = httpx.Response(400, json={"error": {"message": "(#100) bad", "code": 100}})
    assert whatsapp_meta.error_from_response(meta).message == "(#100) bad"
