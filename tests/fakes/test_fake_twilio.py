"""Tests of the fake Twilio itself: its wire format, its knobs, and its signed callbacks."""

from __future__ import annotations

import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.servers import ThreadedReceiver

from .twilio import FakeTwilio, num_segments, twilio_signature

SID = "AC" + "1" * 32
TOKEN = "secret-token"
OTHER_SID = "AC" + "2" * 32
OTHER_TOKEN = "other-token"
SENDER = "+15005550006"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
REPO = Path(__file__).resolve().parents[2]

MESSAGE_KEYS = {
    "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
    "direction", "error_code", "error_message", "from", "messaging_service_sid", "num_media",
    "num_segments", "price", "price_unit", "sid", "status", "subresource_uris", "to", "uri",
}  # fmt: skip


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(accounts={SID: TOKEN, OTHER_SID: OTHER_TOKEN}) as fake:
        yield fake


@pytest.fixture
def fake(module_fake: FakeTwilio, receiver: ThreadedReceiver) -> FakeTwilio:
    module_fake.reset()
    receiver.hits.clear()
    receiver.failing = 0
    return module_fake


@pytest.fixture
def client(fake: FakeTwilio) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, auth=(SID, TOKEN), trust_env=False) as http:
        yield http


def send(client: httpx.Client, **params: str | list[str]) -> httpx.Response:
    fields: dict[str, str | list[str]] = {"To": "+15551230001", "From": SENDER, "Body": "Hi"}
    fields.update(params)
    return client.post(MESSAGES, data={k: v for k, v in fields.items() if v != "-"})


def twilio_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    return body


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- signature -------------------------------------------------------------------------------

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
JSON_BODY = '{"property": "value", "boolean": true}'


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        (VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            VECTOR_PARAMS,
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ),
        (
            VECTOR_URL,
            {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]},
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        ),
        (
            f"{VECTOR_URL}&bodySHA256={hashlib.sha256(JSON_BODY.encode()).hexdigest()}",
            {},
            "a9nBmqA0ju/hNViExpshrM61xv4=",
        ),
    ],
)
def test_signature_matches_reference_vectors(
    url: str, params: dict[str, str] | dict[str, list[str]], expected: str
) -> None:
    assert twilio_signature(url, params, "12345") == expected


def test_body_hash_of_reference_vector() -> None:
    digest = hashlib.sha256(JSON_BODY.encode()).hexdigest()
    assert digest.startswith("0a1ff763")
    assert digest.endswith("6e6620")


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("Ж" * 70, 1),
        ("Ж" * 71, 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
    ],
)
def test_segment_count(body: str, segments: int) -> None:
    assert num_segments(body) == segments


# -- create ----------------------------------------------------------------------------------


def test_create_answers_full_message_resource(fake: FakeTwilio, client: httpx.Client) -> None:
    response = send(client, ValidityPeriod="600")
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    message = response.json()
    assert set(message) == MESSAGE_KEYS
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["status"] == "queued"
    assert message["account_sid"] == SID
    assert (message["to"], message["from"], message["body"]) == ("+15551230001", SENDER, "Hi")
    assert (message["num_segments"], message["num_media"]) == ("1", "0")
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    for key in ("date_sent", "price", "price_unit", "error_code", "error_message"):
        assert message[key] is None
    created = parsedate_to_datetime(message["date_created"])
    assert abs(created - datetime.now(UTC)) < timedelta(seconds=5)
    assert message["date_created"].endswith(" +0000")
    assert message["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{message['sid']}.json"

    [record] = fake.requests
    assert record.params["ValidityPeriod"] == ["600"]
    assert (record.response_status, record.sid) == (201, message["sid"])
    assert fake.messages[message["sid"]]["sid"] == message["sid"]


def test_media_message_gets_an_mm_sid(client: httpx.Client) -> None:
    response = send(client, Body="-", MediaUrl=["https://a.test/1.png", "https://a.test/2.png"])
    message = response.json()
    assert re.fullmatch(r"MM[0-9a-f]{32}", message["sid"])
    assert message["num_media"] == "2"


def test_long_unicode_body_counts_ucs2_segments(client: httpx.Client) -> None:
    assert send(client, Body="Ж" * 71).json()["num_segments"] == "2"


@pytest.mark.parametrize(
    "auth",
    [None, (SID, "wrong"), (OTHER_SID, OTHER_TOKEN), ("SK" + "3" * 32, TOKEN)],
    ids=["missing", "bad-token", "other-account", "api-key"],
)
def test_bad_credentials_answer_20003(fake: FakeTwilio, auth: tuple[str, str] | None) -> None:
    with httpx.Client(base_url=fake.base_url, auth=auth, trust_env=False) as http:
        response = http.post(MESSAGES, data={"To": "+15551230001", "From": SENDER, "Body": "x"})
    body = twilio_error(response, 401, 20003)
    assert body["message"] == "Authenticate"
    assert fake.messages == {}
    assert fake.requests[0].response_status == 401


def test_unknown_account_answers_20003(fake: FakeTwilio) -> None:
    unknown = "AC" + "9" * 32
    with httpx.Client(base_url=fake.base_url, auth=(unknown, TOKEN), trust_env=False) as http:
        response = http.get(f"/2010-04-01/Accounts/{unknown}/Messages.json")
    twilio_error(response, 401, 20003)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"To": "-"}, 21604),
        ({"From": "-"}, 21603),
        ({"Body": "-"}, 21602),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"To": "555"}, 21211),
        ({"To": "+0123456789"}, 21211),
        ({"From": "not a number!"}, 21212),
        ({"From": "+15005550001"}, 21212),
        ({"From": "+15005550007"}, 21606),
        ({"From": "+15005550008"}, 21611),
        ({"To": "+15005550001"}, 21211),
        ({"To": "+15005550002"}, 21612),
        ({"To": "+15005550003"}, 21408),
        ({"To": "+15005550004"}, 21610),
        ({"To": "+15005550009"}, 21614),
    ],
)
def test_invalid_creates_answer_twilio_errors(
    fake: FakeTwilio, client: httpx.Client, params: dict[str, str], code: int
) -> None:
    body = twilio_error(send(client, **params), 400, code)
    if code == 21211:
        assert body["message"] == f"The 'To' number {params['To']} is not a valid phone number."
    assert fake.messages == {}
    assert (fake.requests[0].response_status, fake.requests[0].error_code) == (400, code)


def test_body_of_exactly_1600_characters_is_accepted(client: httpx.Client) -> None:
    assert send(client, Body="x" * 1600).json()["num_segments"] == "11"


def test_whatsapp_addresses_are_accepted(client: httpx.Client) -> None:
    response = send(client, To="whatsapp:+15551230001", From="whatsapp:+14155238886")
    assert response.status_code == 201
    assert response.json()["to"] == "whatsapp:+15551230001"


def test_json_body_loses_to(client: httpx.Client) -> None:
    response = client.post(MESSAGES, json={"To": "+15551230001", "From": SENDER, "Body": "Hi"})
    twilio_error(response, 400, 21604)


def test_fail_next_500_then_recovers(fake: FakeTwilio, client: httpx.Client) -> None:
    fake.fail_next(1)
    twilio_error(send(client), 500, 20500)
    assert send(client).status_code == 201
    assert [r.response_status for r in fake.requests] == [500, 201]
    assert len(fake.messages) == 1


def test_fail_next_429_with_retry_after(fake: FakeTwilio, client: httpx.Client) -> None:
    fake.fail_next(2, http_status=429, code=20429, retry_after=1)
    for _ in range(2):
        response = send(client)
        twilio_error(response, 429, 20429)
        assert response.headers["retry-after"] == "1"
    assert send(client).status_code == 201
    assert len(fake.messages) == 1


def test_down_drops_creates_unanswered(fake: FakeTwilio, client: httpx.Client) -> None:
    fake.set_down(True)
    with pytest.raises(httpx.RemoteProtocolError):
        send(client)
    assert client.get(MESSAGES).status_code == 200
    fake.set_down(False)
    assert send(client).status_code == 201
    assert [r.response_status for r in fake.requests] == [0, 201]
    assert fake.requests[0].params["To"] == ["+15551230001"]


def test_restart_keeps_port_and_messages() -> None:
    with FakeTwilio() as fake:
        base_url = fake.base_url
        auth = (fake.account_sid, fake.auth_token)
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        data = {"To": "+15551230001", "From": SENDER, "Body": "Hi"}
        with httpx.Client(base_url=base_url, auth=auth, trust_env=False) as http:
            sid = http.post(path, data=data).json()["sid"]
            fake.stop()
            with pytest.raises(httpx.ConnectError):
                http.post(path, data=data)
            fake.start()
            assert fake.base_url == base_url
            fetched = http.get(path.replace(".json", f"/{sid}.json"))
            assert fetched.status_code == 200


# -- fetch, list, cancel ---------------------------------------------------------------------


def test_fetch_and_unknown_sid(client: httpx.Client) -> None:
    sid = send(client).json()["sid"]
    fetched = client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json")
    assert fetched.status_code == 200
    assert fetched.json()["sid"] == sid
    assert set(fetched.json()) == MESSAGE_KEYS

    path = f"/2010-04-01/Accounts/{SID}/Messages/SM{'f' * 32}.json"
    body = twilio_error(client.get(path), 404, 20404)
    assert body["message"] == f"The requested resource {path} was not found"


def test_other_accounts_messages_are_not_visible(fake: FakeTwilio, client: httpx.Client) -> None:
    sid = send(client).json()["sid"]
    with httpx.Client(
        base_url=fake.base_url, auth=(OTHER_SID, OTHER_TOKEN), trust_env=False
    ) as other:
        response = other.get(f"/2010-04-01/Accounts/{OTHER_SID}/Messages/{sid}.json")
        twilio_error(response, 404, 20404)
        listed = other.get(f"/2010-04-01/Accounts/{OTHER_SID}/Messages.json").json()
    assert listed["messages"] == []


def test_list_filters_by_to_and_pages_newest_first(client: httpx.Client) -> None:
    mine = [send(client, To="+15551230001", Body=f"m{i}").json()["sid"] for i in range(5)]
    send(client, To="+15551230002")

    seen: list[str] = []
    url: str | None = f"{MESSAGES}?To=%2B15551230001&PageSize=2"
    pages = 0
    while url is not None and pages < 10:
        page = client.get(url).json()
        assert page["page"] == pages
        assert page["page_size"] == 2
        assert page["previous_page_uri"] is None
        assert page["first_page_uri"].startswith(MESSAGES + "?")
        assert page["start"] == pages * 2
        assert page["end"] == page["start"] + len(page["messages"]) - 1
        seen += [m["sid"] for m in page["messages"]]
        url = page["next_page_uri"]
        pages += 1
    assert pages == 3
    assert seen == mine[::-1]


def test_list_date_sent_filters(fake: FakeTwilio, client: httpx.Client) -> None:
    sid = send(client).json()["sid"]
    eventually(lambda: fake.messages[sid]["date_sent"] is not None)
    fake.set_outcome("+15551230002", "queued")
    held = send(client, To="+15551230002").json()["sid"]
    today = datetime.now(UTC).date()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)

    def listed(**query: str) -> list[str]:
        return [m["sid"] for m in client.get(MESSAGES, params=query).json()["messages"]]

    assert listed(DateSent=today.isoformat()) == [sid]
    assert listed(DateSent=yesterday.isoformat()) == []
    assert listed(**{"DateSent>": today.isoformat(), "DateSent<": today.isoformat()}) == [sid]
    assert listed(**{"DateSent>": tomorrow.isoformat()}) == []
    assert listed(**{"DateSent<": yesterday.isoformat()}) == []
    # How the SDK spells it on the wire: the operator is percent-encoded in the key.
    raw = client.get(f"{MESSAGES}?DateSent%3E={today.isoformat()}").json()
    assert [m["sid"] for m in raw["messages"]] == [sid]
    # Still in the sender's queue: no date_sent, so no DateSent filter matches it, however
    # wide; only a list without one shows it.
    assert fake.messages[held]["date_sent"] is None
    assert listed(**{"DateSent>": yesterday.isoformat()}) == [sid]
    assert held in listed()
    twilio_error(client.get(MESSAGES, params={"DateSent": "yesterday"}), 400, 20001)
    assert {"DateSent>": [yesterday.isoformat()]} in fake.lists


def test_list_is_newest_date_sent_first_not_creation_order(
    fake: FakeTwilio, client: httpx.Client
) -> None:
    fake.set_outcome("+15551230002", "queued")
    held = send(client, To="+15551230002").json()["sid"]  # created first, never sent
    first = send(client, Body="first").json()["sid"]
    eventually(lambda: fake.messages[first]["date_sent"] is not None)
    second = send(client, Body="second").json()["sid"]
    eventually(lambda: fake.messages[second]["date_sent"] is not None)

    seen: list[str] = []
    url: str | None = f"{MESSAGES}?PageSize=1"
    while url is not None:
        page = client.get(url).json()
        seen += [m["sid"] for m in page["messages"]]
        url = page["next_page_uri"]
    # Unsent first (no date_sent to sort by), then by date sent, newest first.
    assert seen == [held, second, first]


def test_a_create_whose_answer_is_lost_still_happened(
    fake: FakeTwilio, client: httpx.Client
) -> None:
    fake.lose_answers(True)
    with pytest.raises(httpx.RemoteProtocolError):
        send(client, Body="did it go?")
    fake.lose_answers(False)
    [record] = fake.requests
    assert record.response_status == 201 and record.sid is not None
    eventually(lambda: fake.messages[record.sid or ""]["status"] == "delivered")
    listed = client.get(MESSAGES, params={"To": "+15551230001"}).json()["messages"]
    assert [m["sid"] for m in listed] == [record.sid]


def test_a_client_gone_before_the_answer_leaves_a_message_that_goes_on(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    fake.set_answer_delay(0.5)
    with (
        httpx.Client(
            base_url=fake.base_url, auth=(SID, TOKEN), trust_env=False, timeout=0.05
        ) as hasty,
        pytest.raises(httpx.ReadTimeout),
    ):
        send(hasty, Body="gone", StatusCallback=receiver.url)
    [record] = fake.requests
    assert record.response_status == 201 and record.sid is not None
    fake.wait_for_callbacks(2)
    assert callback_statuses(receiver) == ["sent", "delivered"]
    # What Herald's reconciliation reads: the list narrowed to this To and From.
    query = {"To": "+15551230001", "From": SENDER, "PageSize": "1000"}
    listed = client.get(MESSAGES, params=query).json()["messages"]
    assert [(m["sid"], m["body"], m["status"]) for m in listed] == [
        (record.sid, "gone", "delivered")
    ]
    other_sender = client.get(MESSAGES, params={**query, "From": "+15005550010"}).json()
    assert other_sender["messages"] == []


def test_lost_callbacks_leave_the_outcome_to_read_back(
    fake: FakeTwilio, client: httpx.Client
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fake.set_outcome("+15551230009", "undelivered", 30005)
    callback = f"http://127.0.0.1:{closed_port}/cb#rc=3&rp=ct,rt,5xx"
    sid = send(client, To="+15551230009", StatusCallback=callback).json()["sid"]
    eventually(lambda: len(fake.callbacks_failed) == 2)
    assert [(r.params["MessageStatus"], r.attempts) for r in fake.callbacks_failed] == [
        ("sent", 4),
        ("undelivered", 4),
    ]
    fetched = client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json").json()
    assert (fetched["status"], fetched["error_code"], fetched["error_message"]) == (
        "undelivered",
        30005,
        "Unknown destination handset",
    )
    assert fetched["date_sent"] is not None
    listed = client.get(MESSAGES, params={"To": "+15551230009", "From": SENDER}).json()
    assert [(m["sid"], m["status"]) for m in listed["messages"]] == [(sid, "undelivered")]


def test_answer_delay_is_reset_and_never_negative(fake: FakeTwilio, client: httpx.Client) -> None:
    with pytest.raises(ValueError):
        fake.set_answer_delay(-1)
    fake.set_answer_delay(30)
    fake.reset()
    assert send(client).status_code == 201  # within httpx's 5 s default, so not delayed


def test_fetches_are_recorded_and_prices_can_be_withheld(
    fake: FakeTwilio, client: httpx.Client
) -> None:
    fake.set_priced(False)
    sid = send(client).json()["sid"]
    eventually(lambda: fake.messages[sid]["status"] == "delivered")
    message = client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json").json()
    assert (message["status"], message["price"], message["price_unit"]) == ("delivered", None, None)
    assert message["date_sent"] is not None
    assert fake.fetches == [sid]


def test_cancel_is_refused_and_unknown_is_404(client: httpx.Client) -> None:
    sid = send(client).json()["sid"]
    path = f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json"
    body = twilio_error(client.post(path, data={"Status": "canceled"}), 400, 30409)
    assert body["message"] == "Message cannot be canceled"
    unknown = f"/2010-04-01/Accounts/{SID}/Messages/SM{'0' * 32}.json"
    twilio_error(client.post(unknown, data={"Status": "canceled"}), 404, 20404)


# -- status progression and callbacks --------------------------------------------------------


def callback_statuses(receiver: ThreadedReceiver) -> list[str]:
    return [parse_qs(hit.text)["MessageStatus"][0] for hit in receiver.hits]


@pytest.mark.parametrize(
    ("fragment", "attempts", "answer"),
    [
        ("", 1, 503),  # Twilio's default: a 5xx is not retried
        ("#rc=3&rp=ct,rt,5xx", 3, 200),  # Herald's override: retried until it lands
        ("#rc=1&rp=5xx", 2, 503),  # at most rc retries
        ("#rc=3&rp=4xx", 1, 503),  # only on what rp names
    ],
)
def test_connection_overrides_in_the_fragment_retry_callbacks(
    fake: FakeTwilio,
    client: httpx.Client,
    receiver: ThreadedReceiver,
    fragment: str,
    attempts: int,
    answer: int,
) -> None:
    receiver.failing = 2
    fake.set_outcome("+15551230009", "failed", 30007)  # one callback, for a short count
    send(client, To="+15551230009", StatusCallback=receiver.url + "/cb" + fragment)
    fake.wait_for_callbacks(1)
    [record] = fake.callbacks_sent
    assert (record.attempts, record.status_code) == (attempts, answer)
    assert record.url == receiver.url + "/cb"  # the fragment is neither sent nor signed
    tokens = {hit.headers["I-Twilio-Idempotency-Token"] for hit in receiver.hits}
    assert len(receiver.hits) == attempts and len(tokens) == 1  # retries carry one token


def test_callbacks_are_signed_and_in_order(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    callback = f"{receiver.url}/twilio/status?tenant=7"
    sid = send(client, StatusCallback=callback + "#rc=2").json()["sid"]
    fake.wait_for_callbacks(2)

    assert callback_statuses(receiver) == ["sent", "delivered"]
    for hit in receiver.hits:
        params = parse_qs(hit.text, keep_blank_values=True)
        assert hit.path == "/twilio/status?tenant=7"
        assert hit.headers["X-Twilio-Signature"] == twilio_signature(callback, params, TOKEN)
        assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
        assert hit.headers["User-Agent"] == "TwilioProxy/1.1"
        assert params["MessageSid"] == params["SmsSid"] == [sid]
        assert params["MessageStatus"] == params["SmsStatus"]
        assert params["AccountSid"] == [SID]
        assert params["From"] == [SENDER]
        assert params["To"] == ["+15551230001"]
        assert params["ApiVersion"] == ["2010-04-01"]
        assert "ErrorCode" not in params
    sent, delivered = (parse_qs(hit.text) for hit in receiver.hits)
    assert "RawDlrDoneDate" not in sent
    assert re.fullmatch(r"\d{10}", delivered["RawDlrDoneDate"][0])

    assert [r.status_code for r in fake.callbacks_sent] == [200, 200]
    assert fake.callbacks_sent[0].url == callback
    message = client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json").json()
    assert message["status"] == "delivered"
    assert (message["price"], message["price_unit"]) == ("-0.00750", "USD")
    assert message["date_sent"] is not None
    assert fake.messages[sid]["status"] == "delivered"


def test_undelivered_outcome_carries_error_code(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    fake.set_outcome("+15551230009", "undelivered", 30003)
    sid = send(client, To="+15551230009", StatusCallback=receiver.url).json()["sid"]
    fake.wait_for_callbacks(2)
    assert callback_statuses(receiver) == ["sent", "undelivered"]
    final = parse_qs(receiver.hits[1].text)
    assert final["ErrorCode"] == ["30003"]
    assert final["ErrorMessage"]
    assert "RawDlrDoneDate" in final
    message = client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json").json()
    assert (message["status"], message["error_code"]) == ("undelivered", 30003)


def test_failed_outcome_sends_only_failed(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    fake.set_outcome("+15551230009", "failed", 30007)
    send(client, To="+15551230009", StatusCallback=receiver.url)
    fake.wait_for_callbacks(1)
    time.sleep(0.05)
    assert callback_statuses(receiver) == ["failed"]
    assert parse_qs(receiver.hits[0].text)["ErrorCode"] == ["30007"]


def test_reversed_order_sends_delivered_first(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    fake.callback_order("reversed")
    sid = send(client, StatusCallback=receiver.url).json()["sid"]
    fake.wait_for_callbacks(2)
    assert callback_statuses(receiver) == ["delivered", "sent"]
    assert fake.messages[sid]["status"] == "delivered"


def test_messaging_service_sends_accepted_then_queued(
    fake: FakeTwilio, client: httpx.Client, receiver: ThreadedReceiver
) -> None:
    service = "MG" + "a" * 32
    response = send(client, From="-", MessagingServiceSid=service, StatusCallback=receiver.url)
    message = response.json()
    assert (message["status"], message["from"], message["num_segments"]) == ("accepted", None, "0")
    assert message["messaging_service_sid"] == service
    fake.wait_for_callbacks(3)
    assert callback_statuses(receiver) == ["queued", "sent", "delivered"]
    assert parse_qs(receiver.hits[0].text)["MessagingServiceSid"] == [service]
    assert fake.messages[message["sid"]]["from"] is not None


def test_connect_failure_is_retried_once(fake: FakeTwilio, client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fake.set_outcome("+15551230009", "failed")
    send(client, To="+15551230009", StatusCallback=f"http://127.0.0.1:{closed_port}/cb")
    eventually(lambda: len(fake.callbacks_failed) == 1)
    [record] = fake.callbacks_failed
    assert (record.status_code, record.attempts) == (None, 2)
    assert record.error is not None and record.error.startswith("connect failed")
    assert fake.callbacks_sent == []


def test_no_callbacks_when_disabled_but_status_progresses(receiver: ThreadedReceiver) -> None:
    with FakeTwilio(send_callbacks=False, callback_delay=0.01) as fake:
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        auth = (fake.account_sid, fake.auth_token)
        with httpx.Client(base_url=fake.base_url, auth=auth, trust_env=False) as http:
            data = {"To": "+15551230001", "From": SENDER, "StatusCallback": receiver.url}
            sid = http.post(path, data={**data, "Body": "Hi"}).json()["sid"]
        eventually(lambda: fake.messages[sid]["status"] == "delivered")
    assert receiver.hits == []


def test_wait_for_callbacks_times_out(fake: FakeTwilio) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for_callbacks(1, timeout=0.05)


# -- standalone ------------------------------------------------------------------------------


def test_standalone_prints_ready_and_serves_stats() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.twilio", "--port", "0", "--accounts", f"{SID}:{TOKEN}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no READY line within 20 s"
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"READY (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        with httpx.Client(base_url=match[1], auth=(SID, TOKEN), trust_env=False) as http:
            data = {"To": "+15551230001", "From": SENDER, "Body": "Hi"}
            assert http.post(MESSAGES, data=data).status_code == 201
            stats = http.get("/_fake/stats").json()
        assert stats["creates"] == 1
        assert stats["callbacks_sent"] == stats["callbacks_failed"] == 0
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
