"""The web cabinet over plain HTTP: cookies, CSRF, throttled sign-ins, roles, sign-in links,
sign-out everywhere (the browser tests are in test_cabinet_browser.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herald.config import Settings
from tests.e2e.cabinet_pages import (
    PASSWORD,
    browser_client,
    csrf_of,
    make_user,
    sign_in_link,
    sign_in_over_http,
)
from tests.e2e.helpers import add_twilio_sender, send_sms, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, callback_receiver, running_herald


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    # Few failures allowed, refilled slowly: the throttle shows within a test.
    tight = settings.model_copy(update={"failed_auth_burst": 3, "failed_auth_per_minute": 1.0})
    async with running_herald(tight) as running:
        yield running


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _cookie_header(response: httpx.Response, name: str) -> str:
    found = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert found, response.headers
    return found[0].lower()


async def test_the_session_cookie_is_httponly_lax_and_secure_over_https(
    herald: RunningHerald,
) -> None:
    await make_user(herald)
    async with browser_client(herald) as browser:
        answer = await sign_in_over_http(browser, "ann@example.com")
        assert answer.status_code == 303 and answer.headers["location"] == "/messages"
        cookie = _cookie_header(answer, "herald_session")
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http: a Secure cookie would never come back
        assert (await browser.get("/messages")).status_code == 200
    # Behind a TLS proxy (uvicorn trusts X-Forwarded-Proto from loopback): Secure.
    async with browser_client(herald) as browser:
        browser.headers["X-Forwarded-Proto"] = "https"
        form = await browser.get("/sign-in")
        csrf_cookie = _cookie_header(form, "herald_csrf")
        assert "; secure" in csrf_cookie and "samesite=strict" in csrf_cookie
        # httpx keeps a Secure cookie for https only: hand it back as the browser would.
        basis = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        answer = await browser.post(
            "/sign-in",
            data={
                "email": "ann@example.com",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
            },
            headers={"Cookie": f"herald_csrf={basis}"},
        )
        assert answer.status_code == 303
        assert "; secure" in _cookie_header(answer, "herald_session")


async def test_a_post_without_its_csrf_token_is_refused(herald: RunningHerald) -> None:
    await make_user(herald)
    async with herald.client() as api:
        message_id = await send_sms(api, "+14155550100", "Hi", sendAt=_tomorrow())
    async with browser_client(herald) as browser:
        form = await browser.get("/sign-in")
        no_token = await browser.post(
            "/sign-in", data={"email": "ann@example.com", "password": PASSWORD}
        )
        assert no_token.status_code == 403
        assert "herald_session" not in no_token.headers.get("set-cookie", "")
        assert (await sign_in_over_http(browser, "ann@example.com")).status_code == 303
        page = await browser.get(f"/messages/{message_id}")
        token = csrf_of(page.text)
        assert token != csrf_of(form.text)  # a signed-in browser's token is its session's
        cancel = f"/messages/{message_id}/cancel"
        assert (await browser.post(cancel)).status_code == 403
        assert (await browser.post(cancel, data={"csrf_token": "0" * 64})).status_code == 403
        # An htmx request carries it in a header instead.
        assert (await browser.post(cancel, headers={"X-CSRF-Token": "0" * 64})).status_code == 403
        assert (await browser.post("/language", data={"language": "ru"})).status_code == 403
        assert (await browser.post("/sign-out")).status_code == 403
        async with herald.client() as api:
            assert (await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == (
                "scheduled"
            )
        done = await browser.post(cancel, headers={"X-CSRF-Token": token})
        assert done.status_code == 303
    async with herald.client() as api:
        assert (await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == "cancelled"


async def test_failed_sign_ins_are_throttled_per_address(herald: RunningHerald) -> None:
    await make_user(herald)
    async with browser_client(herald) as browser:
        for _ in range(3):
            wrong = await sign_in_over_http(browser, "ann@example.com", "not the password")
            assert wrong.status_code == 401
            assert "The e-mail address or the password is wrong." in wrong.text
        throttled = await sign_in_over_http(browser, "ann@example.com", "not the password")
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in throttled.text
        # Even the right password waits: guessing may not go on from this address.
        right = await sign_in_over_http(browser, "ann@example.com")
        assert right.status_code == 429
        assert "herald_session" not in right.headers.get("set-cookie", "")


async def test_a_viewer_may_read_but_not_cancel(herald: RunningHerald) -> None:
    await make_user(herald, "vic@example.com", role="viewer")
    async with herald.client() as api:
        message_id = await send_sms(api, "+14155550100", "Hi", sendAt=_tomorrow())
    async with browser_client(herald) as browser:
        assert (await sign_in_over_http(browser, "vic@example.com")).status_code == 303
        page = await browser.get(f"/messages/{message_id}")
        assert page.status_code == 200
        assert "Cancel the message" not in page.text
        assert 'href="/send"' not in page.text
        refused = await browser.post(
            f"/messages/{message_id}/cancel", data={"csrf_token": csrf_of(page.text)}
        )
        assert refused.status_code == 403
        assert "Your role does not allow this." in refused.text
    async with herald.client() as api:
        assert (await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == "scheduled"


async def test_a_sign_in_link_works_once_then_asks_for_a_password(herald: RunningHerald) -> None:
    await make_user(herald, "new@example.com", role="operator", password=None)
    link = await sign_in_link(herald, "new@example.com")
    async with browser_client(herald) as browser:
        landing = await browser.get(link)  # a mail scanner's GET spends nothing
        assert landing.status_code == 200
        landing = await browser.get(link)
        spent = await browser.post(link, data={"csrf_token": csrf_of(landing.text)})
        assert spent.status_code == 303 and spent.headers["location"] == "/account/password"
        form = await browser.get("/account/password")
        assert "Choose a password" in form.text and 'name="current"' not in form.text
        short = await browser.post(
            "/account/password",
            data={"password": "short", "again": "short", "csrf_token": csrf_of(form.text)},
        )
        assert short.status_code == 422 and "at least 10 characters" in short.text
        saved = await browser.post(
            "/account/password",
            data={"password": PASSWORD, "again": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        assert saved.status_code == 303
    async with browser_client(herald) as other:
        again = await other.get(link)
        used = await other.post(link, data={"csrf_token": csrf_of(again.text)})
        assert used.status_code == 410
        assert (await sign_in_over_http(other, "new@example.com")).status_code == 303


async def test_sign_out_everywhere_ends_every_browser(herald: RunningHerald) -> None:
    await make_user(herald)
    async with browser_client(herald) as first, browser_client(herald) as second:
        for browser in (first, second):
            assert (await sign_in_over_http(browser, "ann@example.com")).status_code == 303
        account = await first.get("/account")
        assert account.text.count("this browser") == 1
        ended = await first.post(
            "/account/sign-out-everywhere", data={"csrf_token": csrf_of(account.text)}
        )
        assert ended.status_code == 303 and ended.headers["location"] == "/sign-in"
        for browser in (first, second):
            answer = await browser.get("/messages")
            assert answer.status_code == 303
            assert answer.headers["location"] == "/sign-in?next=%2Fmessages"


async def test_pages_speak_the_browsers_language_and_the_users_choice(
    herald: RunningHerald,
) -> None:
    await make_user(herald)
    async with browser_client(herald) as browser:
        browser.headers["Accept-Language"] = "ru-RU,ru;q=0.9,en;q=0.5"
        sign_in = await browser.get("/sign-in")
        assert '<html lang="ru">' in sign_in.text and "Вход в Herald" in sign_in.text
        assert (await sign_in_over_http(browser, "ann@example.com")).status_code == 303
        messages = await browser.get("/messages")
        assert "Сообщения" in messages.text
        chosen = await browser.post(
            "/language",
            data={"language": "en", "next": "/account", "csrf_token": csrf_of(messages.text)},
        )
        assert chosen.headers["location"] == "/account"
        # Kept with the user: the browser's Russian no longer decides.
        assert '<html lang="en">' in (await browser.get("/messages")).text


async def test_a_messages_page_shows_its_cascade_errors_and_callbacks(
    herald: RunningHerald, fake: FakeTwilio
) -> None:
    await make_user(herald)
    fake.set_outcome("+14155550199", "undelivered", 30003)
    async with callback_receiver() as receiver, herald.client() as api:
        await add_twilio_sender(api, fake)
        message_id = await send_sms(
            api, "+14155550199", "Your code is 4711", callbackUrl=receiver.url
        )
        found = await wait_status(api, message_id, {"undelivered"})
        await receiver.wait_for(lambda body: body["status"] == "undelivered")
    sid = found["provider"]["messageId"]
    async with browser_client(herald) as browser:
        assert (await sign_in_over_http(browser, "ann@example.com")).status_code == 303
        page = (await browser.get(f"/messages/{message_id}")).text
        assert sid in page  # the provider's id
        assert "Error 30003" in page and "Unreachable destination handset" in page
        assert 'href="https://www.twilio.com/docs/errors/30003"' in page
        assert "Attempt 1 on SMS through twilio" in page
        assert "Callback 1 to your system" in page and receiver.url in page
        assert "Cancel the message" not in page  # undelivered is final
        listed = await browser.get("/messages", params={"status": "undelivered"})
        assert message_id in listed.text
        assert (
            message_id not in (await browser.get("/messages", params={"status": "delivered"})).text
        )
        assert message_id in (await browser.get("/messages", params={"to": "+14155550199"})).text
        wrong = await browser.get("/messages", params={"to": "not a phone"})
        assert "The phone number is not valid" in wrong.text
