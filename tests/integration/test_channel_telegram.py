"""The Telegram adapter against the fake Bot API over real HTTP: payloads, splitting, and how
each Bot API error maps to Transient / Permanent / OutcomeUnknown."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from herald.channels.base import (
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    SenderAccount,
    TransientError,
)
from herald.channels.telegram import TelegramBot, error_from_response
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.servers import free_port

CHAT = 123456789


def account(fake: FakeTelegram | None, token: str | None = None) -> SenderAccount:
    return SenderAccount(
        id="sender-tg",
        provider="telegram",
        from_address="herald_fake_bot",
        account_id=None,
        credentials={"botToken": token if token is not None else DEFAULT_TOKEN},
        base_url=fake.base_url if fake else None,
    )


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def fake(module_fake: FakeTelegram) -> FakeTelegram:
    module_fake.reset()
    return module_fake


@pytest.fixture
async def bot() -> AsyncIterator[TelegramBot]:
    adapter = TelegramBot(httpx.AsyncClient(timeout=5.0, trust_env=False))
    yield adapter
    await adapter.aclose()


def calls(fake: FakeTelegram) -> list[tuple[str, dict[str, object]]]:
    return [(r.method, r.payload) for r in fake.requests]


# -- what goes over the wire --------------------------------------------------------------------


async def test_text_message(fake: FakeTelegram, bot: TelegramBot) -> None:
    receipt = await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi <b>Ann</b>"))

    assert calls(fake) == [("sendMessage", {"chat_id": CHAT, "text": "Hi <b>Ann</b>"})]
    assert receipt.provider_message_id == f"{CHAT}:1"
    assert receipt.provider_status == "accepted"
    assert receipt.created_at is not None and receipt.created_at.tzinfo is UTC
    assert fake.requests[0].token == fake.token


async def test_text_with_inline_url_button(fake: FakeTelegram, bot: TelegramBot) -> None:
    message = OutboundMessage(
        to=str(CHAT),
        body="Your order shipped",
        button_url="https://ex.com/t/1",
        button_text="Track",
    )
    await bot.send(account(fake), message)

    assert calls(fake) == [
        (
            "sendMessage",
            {
                "chat_id": CHAT,
                "text": "Your order shipped",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "Track", "url": "https://ex.com/t/1"}]]
                },
            },
        )
    ]


async def test_photo_with_caption_and_button(fake: FakeTelegram, bot: TelegramBot) -> None:
    message = OutboundMessage(
        to=str(CHAT),
        body="New arrivals",
        image_url="https://cdn.ex.com/a.jpg",
        button_url="https://ex.com/shop",
        button_text="Shop",
    )
    receipt = await bot.send(account(fake), message)

    assert calls(fake) == [
        (
            "sendPhoto",
            {
                "chat_id": CHAT,
                "photo": "https://cdn.ex.com/a.jpg",
                "caption": "New arrivals",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "Shop", "url": "https://ex.com/shop"}]]
                },
            },
        )
    ]
    assert receipt.provider_message_id == f"{CHAT}:1"
    assert "photo" in fake.sent[0]


async def test_long_caption_sends_photo_then_text(fake: FakeTelegram, bot: TelegramBot) -> None:
    text = "x" * 1025
    message = OutboundMessage(
        to=str(CHAT),
        body=text,
        image_url="https://cdn.ex.com/a.jpg",
        button_url="https://ex.com",
        button_text="Open",
    )
    receipt = await bot.send(account(fake), message)

    markup = {"inline_keyboard": [[{"text": "Open", "url": "https://ex.com"}]]}
    assert calls(fake) == [
        ("sendPhoto", {"chat_id": CHAT, "photo": "https://cdn.ex.com/a.jpg"}),
        ("sendMessage", {"chat_id": CHAT, "text": text, "reply_markup": markup}),
    ]
    # The receipt names the message that carries the text and the button.
    assert receipt.provider_message_id == f"{CHAT}:2"


async def test_caption_of_exactly_1024_stays_one_message(
    fake: FakeTelegram, bot: TelegramBot
) -> None:
    message = OutboundMessage(to=str(CHAT), body="y" * 1024, image_url="https://cdn.ex.com/a.jpg")
    await bot.send(account(fake), message)

    assert [method for method, _ in calls(fake)] == ["sendPhoto"]


async def test_link_without_label_stays_in_the_text(fake: FakeTelegram, bot: TelegramBot) -> None:
    message = OutboundMessage(to=str(CHAT), body="See", button_url="https://ex.com")
    await bot.send(account(fake), message)

    assert calls(fake) == [("sendMessage", {"chat_id": CHAT, "text": "See\n\nhttps://ex.com"})]


async def test_channel_by_username_and_negative_group_ids(
    fake: FakeTelegram, bot: TelegramBot
) -> None:
    channel = await bot.send(account(fake), OutboundMessage(to="@herald_news", body="Hi"))
    group = await bot.send(account(fake), OutboundMessage(to="-1001234567890", body="Hi"))

    assert fake.requests[0].payload["chat_id"] == "@herald_news"
    assert channel.provider_message_id.startswith("-100")
    assert fake.requests[1].payload["chat_id"] == -1001234567890
    assert group.provider_message_id == "-1001234567890:1"


async def test_too_long_text_is_refused_before_calling(
    fake: FakeTelegram, bot: TelegramBot
) -> None:
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="z" * 4097))
    assert caught.value.code == "text_too_long"
    assert fake.requests == []
    # 4096 is still fine.
    await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="z" * 4096))


@pytest.mark.parametrize(
    ("to", "token", "code"),
    [
        ("not a chat", None, "telegram_chat_not_found"),
        (str(CHAT), "no-colon-token", "telegram_unauthorized"),
        (str(CHAT), "123:abc/../../x", "telegram_unauthorized"),
    ],
)
async def test_bad_destination_or_token_is_refused_before_calling(
    fake: FakeTelegram, bot: TelegramBot, to: str, token: str | None, code: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake, token), OutboundMessage(to=to, body="x"))
    assert caught.value.code == code
    assert fake.requests == []


async def test_empty_message_is_refused(fake: FakeTelegram, bot: TelegramBot) -> None:
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="  "))
    assert caught.value.code == "text_empty"


# -- error mapping through the fake -------------------------------------------------------------


async def test_blocked_by_the_user_is_permanent_and_distinct(
    fake: FakeTelegram, bot: TelegramBot
) -> None:
    fake.block_chat(CHAT)
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi"))

    assert caught.value.code == "telegram_blocked"
    assert caught.value.http_status == 403
    assert caught.value.message == "Forbidden: bot was blocked by the user"


async def test_chat_not_found(fake: FakeTelegram, bot: TelegramBot) -> None:
    fake.unknown_chat(CHAT)
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi"))
    assert caught.value.code == "telegram_chat_not_found"
    assert caught.value.http_status == 400


async def test_wrong_token_is_unauthorized(fake: FakeTelegram, bot: TelegramBot) -> None:
    with pytest.raises(PermanentError) as caught:
        await bot.send(account(fake, "999:wrong-token"), OutboundMessage(to=str(CHAT), body="Hi"))
    assert caught.value.code == "telegram_unauthorized"
    assert caught.value.http_status == 401


@pytest.mark.parametrize("header", [False, True])
async def test_throttled_carries_retry_after(
    fake: FakeTelegram, bot: TelegramBot, header: bool
) -> None:
    fake.throttle_next(1, 35, header=header)
    with pytest.raises(TransientError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi"))

    assert caught.value.code == "telegram_throttled"
    assert caught.value.retry_after == 35.0
    assert caught.value.http_status == 429
    assert caught.value.message == "Too Many Requests: retry after 35"
    await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi"))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    fake: FakeTelegram, bot: TelegramBot, status: int
) -> None:
    fake.fail_next(1, status=status)
    with pytest.raises(TransientError) as caught:
        await bot.send(account(fake), OutboundMessage(to=str(CHAT), body="Hi"))
    assert caught.value.code == f"telegram_{status}"


async def test_connection_refused_is_transient(bot: TelegramBot) -> None:
    acc = SenderAccount(
        "s", "telegram", "", None, {"botToken": "1:a"}, f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(TransientError) as caught:
        await bot.send(acc, OutboundMessage(to=str(CHAT), body="Hi"))
    assert caught.value.code == "provider_unreachable"
    assert "1:a" not in caught.value.message


async def test_no_answer_in_time_is_outcome_unknown() -> None:
    # Listening but never accepting: the request is written, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        acc = SenderAccount(
            "s",
            "telegram",
            "",
            None,
            {"botToken": "1:a"},
            f"http://127.0.0.1:{silent.getsockname()[1]}",
        )
        adapter = TelegramBot(httpx.AsyncClient(timeout=httpx.Timeout(0.3), trust_env=False))
        try:
            with pytest.raises(OutcomeUnknown) as caught:
                await adapter.send(acc, OutboundMessage(to=str(CHAT), body="Hi"))
        finally:
            await adapter.aclose()
    assert caught.value.code == "provider_timeout"


# -- error mapping of shapes the fake does not produce ------------------------------------------


def telegram_error(status: int, description: str, **parameters: int) -> httpx.Response:
    body: dict[str, object] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (telegram_error(403, "Forbidden: user is deactivated"), PermanentError, "telegram_blocked"),
        (
            telegram_error(403, "Forbidden: bot can't initiate conversation with a user"),
            PermanentError,
            "telegram_blocked",
        ),
        (
            telegram_error(403, "Forbidden: bot is not a member of the channel chat"),
            PermanentError,
            "telegram_forbidden",
        ),
        (telegram_error(404, "Not Found"), PermanentError, "telegram_unauthorized"),
        (telegram_error(400, "Bad Request: message is too long"), PermanentError, "text_too_long"),
        (
            telegram_error(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1007),
            PermanentError,
            "telegram_chat_migrated",
        ),
        (
            telegram_error(400, "Bad Request: wrong file identifier"),
            PermanentError,
            "telegram_bad_request",
        ),
        (telegram_error(409, "Conflict"), PermanentError, "telegram_409"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), TransientError, "telegram_502"),
    ],
)
def test_error_mapping(response: httpx.Response, kind: type[ProviderError], code: str) -> None:
    error = error_from_response(response)
    assert type(error) is kind
    assert error.code == code
    assert error.http_status == response.status_code


def test_migrated_chat_keeps_the_new_id() -> None:
    error = error_from_response(
        telegram_error(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1007)
    )
    assert error.more_info == "migrate_to_chat_id=-1007"


def test_retry_after_header_is_used_when_parameters_lack_it() -> None:
    response = httpx.Response(
        429,
        json={"ok": False, "error_code": 429, "description": "Too Many Requests"},
        headers={"Retry-After": "7"},
    )
    error = error_from_response(response)
    assert isinstance(error, TransientError) and error.retry_after == 7.0


async def test_find_sent_cannot_ask_telegram(bot: TelegramBot) -> None:
    message = OutboundMessage(to=str(CHAT), body="Hi")
    assert await bot.find_sent(account(None), message, datetime.now(UTC)) == []


async def test_fake_get_me_and_unknown_method(fake: FakeTelegram) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url, trust_env=False) as client:
        me = await client.get(f"/bot{fake.token}/getMe")
        unknown = await client.post(f"/bot{fake.token}/sendSticker", json={"chat_id": 1})
        form = await client.post(
            f"/bot{fake.token}/sendMessage",
            data={"chat_id": "5", "text": "hi", "reply_markup": '{"inline_keyboard":[[]]}'},
        )
    assert me.json()["result"]["is_bot"] is True
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert form.status_code == 200 and form.json()["result"]["chat"]["id"] == 5
