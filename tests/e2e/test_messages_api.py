"""The messages API's contract: bad input, auth, isolation, idempotency, reading, cancelling.

Herald runs without its dispatcher here, so messages stay where the API put them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from herald.clock import ManualClock
from herald.config import Settings
from herald.store.idempotency import IdempotentRequest
from tests.servers import RunningHerald, running_herald


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings, run_workers=False) as running:
        yield running


def one(phone: str = "+14155552671", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"destinations": [{"phone": phone}], "channels": {"sms": {"text": text}}, **extra}


async def count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/messages")
    assert response.status_code == 200
    total: int = response.json()["count"]
    return total


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("no messages key", {}, 422, "missing_field"),
    ("empty messages", {"messages": []}, 422, "invalid_field"),
    ("unknown top-level field", {"messages": [one()], "colour": "red"}, 422, "unknown_field"),
    ("unknown message field", {"messages": [one(priority=1)]}, 422, "unknown_field"),
    ("no destinations", {"messages": [{"channels": {"sms": {"text": "x"}}}]}, 422, "missing_field"),
    ("invalid phone", {"messages": [one(phone="12345")]}, 422, "invalid_phone"),
    ("letters as phone", {"messages": [one(phone="call me")]}, 422, "invalid_phone"),
    (
        "missing phone",
        {"messages": [{"destinations": [{}], "channels": {"sms": {"text": "x"}}}]},
        422,
        "missing_phone",
    ),
    (
        "no text",
        {"messages": [{"destinations": [{"phone": "+14155552671"}], "channels": {"sms": {}}}]},
        422,
        "missing_field",
    ),
    ("empty text", {"messages": [one(text="")]}, 422, "invalid_field"),
    ("blank text", {"messages": [one(text="  \n ")]}, 422, "blank_text"),
    ("text over 1600", {"messages": [one(text="a" * 1601)]}, 422, "text_too_long"),
    (
        "unknown channel field",
        {
            "messages": [
                {
                    "destinations": [{"phone": "+14155552671"}],
                    "channels": {"sms": {"text": "x", "bold": 1}},
                }
            ]
        },
        422,
        "unknown_field",
    ),
    (
        "unsupported channel",
        {
            "messages": [
                {"destinations": [{"phone": "+14155552671"}], "channels": {"pigeon": {"text": "x"}}}
            ]
        },
        422,
        "unsupported_channel",
    ),
    (
        "unknown sender",
        {
            "messages": [
                {
                    "destinations": [{"phone": "+14155552671"}],
                    "channels": {"sms": {"text": "x", "from": "+15550001"}},
                }
            ]
        },
        422,
        "unknown_sender",
    ),
    ("bad callback url", {"messages": [one(callbackUrl="ftp://x")]}, 422, "invalid_callback_url"),
    ("wrong type", {"messages": [{"destinations": "+1415", "channels": {}}]}, 422, "wrong_type"),
    ("a company", {"companyId": 7, "messages": [one()]}, 422, "unsupported_field"),
    ("validate", {"messages": [one(validate=True)]}, 422, "unsupported_field"),
    ("no such task", {"taskId": "t-1", "messages": [one()]}, 422, "task_not_found"),
    (
        "one channel twice",
        {"messages": [{**one(), "channels": {"sms": {"text": "a"}, "SMS": {"text": "b"}}}]},
        422,
        "duplicate_channel",
    ),
    (
        "another channel's field",
        {
            "messages": [
                {
                    "destinations": [{"phone": "+14155552671", "email": "ann@example.com"}],
                    "channels": {"email": {"subject": "s", "text": "x", "templateName": "t"}},
                }
            ]
        },
        422,
        "unsupported_field",
    ),
    (
        "short links without sms",
        {
            "messages": [
                {
                    "destinations": [{"email": "ann@example.com"}],
                    "channels": {"email": {"subject": "s", "text": "https://example.com/a"}},
                    "useShortLinks": True,
                }
            ]
        },
        422,
        "unsupported_field",
    ),
    ("not an object", [1, 2], 422, "wrong_type"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "code"), BAD_BODIES, ids=[case[0] for case in BAD_BODIES]
)
async def test_bad_input_is_refused_clearly_and_stores_nothing(
    client: httpx.AsyncClient, case: str, body: Any, status: int, code: str
) -> None:
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == status, response.text
    data = response.json()
    # With several problems the code is validation_failed and each is listed.
    assert code in {data["code"], *(e["code"] for e in data["details"].get("errors", []))}
    assert isinstance(data["error"], str) and len(data["error"]) > 10
    assert await count(client) == 0


async def test_every_problem_is_reported_at_once(client: httpx.AsyncClient) -> None:
    body = {"messages": [one(phone="123"), one(text="b" * 2000)]}
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == 422
    paths = {e["path"] for e in response.json()["details"]["errors"]}
    assert paths == {"messages[0].destinations[0].phone", "messages[1].channels.sms.text"}


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/messages", content=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert await count(client) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"messages": []}', "text/plain", 415, "unsupported_media_type"),
        (b"messages=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"", "application/json", 422, "missing_body"),
        (b'{"messages": ["\xff"]}', "application/json", 400, "malformed_json"),
    ],
)
async def test_a_body_that_is_not_json_says_what_to_send(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.post(
        "/api/v1/messages", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await count(client) == 0


async def test_a_request_of_more_than_10000_destinations_is_refused(
    client: httpx.AsyncClient,
) -> None:
    message = {**one(), "destinations": [{"phone": "+14155552671"}] * 1000}
    response = await client.post("/api/v1/messages", json={"messages": [message] * 11})
    assert response.status_code == 422
    assert response.json()["code"] == "too_many_destinations"
    assert response.json()["details"] == {"destinations": 11_000, "max": 10_000}
    assert await count(client) == 0


async def test_one_bad_message_stores_none_of_the_batch(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/messages", json={"messages": [one(), one(phone="0")]})
    assert response.status_code == 422
    assert await count(client) == 0


async def test_features_not_built_yet_are_refused(client: httpx.AsyncClient) -> None:
    body = {
        "messages": [
            {
                "destinations": [{"phone": "+14155552671", "pushRegistrationId": "r1"}],
                "channels": {"sms": {"text": "x"}},
            }
        ]
    }
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_field"
    unknown = await client.post("/api/v1/messages", json={"messages": [one(templateId="t1")]})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "template_not_found"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer  x y"])
async def test_wrong_or_missing_api_key_is_401(herald: RunningHerald, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=herald.url, headers=headers) as anon:
        for method, path in [
            ("GET", "/api/v1/messages"),
            ("POST", "/api/v1/messages"),
            ("GET", "/api/v1/senders"),
        ]:
            response = await anon.request(method, path, json={"messages": [one()]})
            assert response.status_code == 401
            assert response.json()["code"] in ("missing_api_key", "invalid_api_key")
    async with herald.client() as client:
        assert await count(client) == 0


async def test_accepted_batch_answers_twin_shape(client: httpx.AsyncClient) -> None:
    body = {
        "companyId": None,
        "taskId": None,
        "bulkId": None,
        "messages": [
            {
                "destinations": [{"phone": "+14155552671"}, {"phone": "+14155552672"}],
                "channels": {"SMS": {"text": "hi", "from": "Sandbox"}},
                "groupId": "g-1",
            },
        ],
    }
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == 201
    results = response.json()
    assert isinstance(results, list) and len(results) == 2
    for r in results:
        assert set(r) == {"id", "bulkId", "groupId", "flowId", "status", "channel", "error"}
        assert r["groupId"] == "g-1" and r["status"] == "queued" and r["channel"] == "sms"
        assert r["error"] is None
    assert results[0]["bulkId"] == results[1]["bulkId"]


async def test_idempotency_key_replays_the_first_answer(client: httpx.AsyncClient) -> None:
    body = {"messages": [one()]}
    first = await client.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "k1"})
    again = await client.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(client) == 1
    other = await client.post(
        "/api/v1/messages",
        json={"messages": [one(text="other")]},
        headers={"Idempotency-Key": "k1"},
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert await count(client) == 1
    # The same request serialised otherwise (spacing, escapes) is the same request.
    respaced = json.dumps(body, indent=2, ensure_ascii=True).encode()
    again = await client.post(
        "/api/v1/messages",
        content=respaced,
        headers={"Idempotency-Key": "k1", "Content-Type": "application/json"},
    )
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"


async def test_an_idempotency_key_is_kept_for_its_window_then_forgotten(
    settings: Settings,
) -> None:
    clock = ManualClock()
    async with running_herald(settings, run_workers=False, clock=clock) as herald:
        async with herald.client() as client:
            key = {"Idempotency-Key": "nightly-1"}
            first = await client.post("/api/v1/messages", json={"messages": [one()]}, headers=key)
            clock.advance(23 * 3600)
            kept = await client.post("/api/v1/messages", json={"messages": [one()]}, headers=key)
            assert kept.headers.get("idempotent-replayed") == "true"
            assert kept.json() == first.json()
            clock.advance(2 * 3600)  # past HERALD_IDEMPOTENCY_HOURS (24)
            anew = await client.post("/api/v1/messages", json={"messages": [one()]}, headers=key)
            assert anew.status_code == 201 and "idempotent-replayed" not in anew.headers
            assert anew.json()[0]["id"] != first.json()[0]["id"]
            assert await count(client) == 2
        async with herald.herald.sessions() as session:
            stored = (await session.scalars(select(IdempotentRequest))).all()
        assert [(r.key, r.created_at) for r in stored] == [("nightly-1", clock.now())]


async def test_same_idempotency_key_at_once_stores_one_batch(client: httpx.AsyncClient) -> None:
    # Requests are checked before the write transaction, so several can get that far
    # together; the key's unique row lets one store and the others replay its answer.
    body = {"messages": [one(phone=f"+1415555{i:04d}") for i in range(100)]}
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "race"})
            for _ in range(5)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert all(a.json() == answers[0].json() for a in answers)
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 4
    assert await count(client) == 100


async def test_projects_never_see_each_other(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    created = (await client.post("/api/v1/messages", json={"messages": [one()]})).json()
    message_id = created[0]["id"]
    other = await herald.new_project("other")
    async with herald.client(other.api_key) as intruder:
        assert (await intruder.get(f"/api/v1/messages/{message_id}")).status_code == 404
        assert (await intruder.get("/api/v1/messages")).json()["count"] == 0
        listed = await intruder.get("/api/v1/messages", params={"id": message_id})
        assert listed.json()["items"] == []
        cancel = await intruder.delete(f"/api/v1/messages/{message_id}")
        assert cancel.status_code == 404
        senders = (await intruder.get("/api/v1/senders")).json()["items"]
        assert all(s["from"] == "Sandbox" for s in senders)
    assert (await client.get(f"/api/v1/messages/{message_id}")).json()["status"] == "queued"


async def test_list_filters_and_cursor_pagination(client: httpx.AsyncClient) -> None:
    for i in range(7):
        phone = "+14155552671" if i % 2 else "+14155552672"
        await client.post(
            "/api/v1/messages",
            json={"messages": [one(phone=phone, text=f"m{i}", groupId=f"g{i % 3}")]},
        )
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/messages", params=params)).json()
        assert page["count"] == 7
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    by_phone = (await client.get("/api/v1/messages", params={"phone": "+14155552671"})).json()
    assert by_phone["count"] == 3
    by_group = (await client.get("/api/v1/messages", params={"groupId": "g0,g1"})).json()
    assert by_group["count"] == 5
    by_status = (await client.get("/api/v1/messages", params={"status": "queued"})).json()
    assert by_status["count"] == 7
    bad = await client.get("/api/v1/messages", params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_status"
    bad = await client.get("/api/v1/messages", params={"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    bad = await client.get("/api/v1/messages", params={"from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_date"
    item = by_phone["items"][0]
    for key in (
        "id",
        "bulkId",
        "groupId",
        "status",
        "statusCode",
        "statusDescription",
        "channel",
        "partCount",
        "destination",
        "message",
        "createdAt",
        "tracks",
    ):
        assert key in item and item[key] is not None


async def test_list_reads_what_twins_sdk_sends(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        [result] = (
            await client.post(
                "/api/v1/messages", json={"messages": [one(text=f"m{i}", groupId=f"g{i % 2}")]}
            )
        ).json()
        ids.append(result["id"])

    async def listed(query: str) -> dict[str, Any]:
        response = await client.get(f"/api/v1/messages?{query}")
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    # PHP's http_build_query: id%5B0%5D=…&id%5B1%5D=…
    page = await listed(f"id%5B0%5D={ids[0]}&id%5B1%5D={ids[3]}")
    assert sorted(item["id"] for item in page["items"]) == sorted([ids[0], ids[3]])
    assert (await listed("groupId%5B0%5D=g1"))["count"] == 2
    assert (await listed("flowId=g0"))["count"] == 3
    assert (await listed("status%5B0%5D=failed"))["count"] == 0
    first, second = (await listed("limit=2&page=1"))["items"], (await listed("limit=2&page=2"))
    assert [i["id"] for i in first] == ids[:2:-1][:2]
    assert [i["id"] for i in second["items"]] == [ids[2], ids[1]]
    assert (await listed("withoutItems=1")) == {"count": 5, "items": [], "nextCursor": None}
    assert (await listed("sort=&timezone="))["count"] == 5  # unset PHP options: nothing asked
    # An unencoded + arrives as a space.
    assert (await listed("phone=+14155552671"))["count"] == 5
    # Each item carries its history, as the single view does.
    [item] = (await listed(f"id={ids[4]}"))["items"]
    assert [(e["status"], e["source"]) for e in item["history"]] == [("queued", "api")]

    for query, code in [
        ("stauts=failed", "unknown_parameter"),
        ("group=channel", "unsupported_parameter"),
        ("companyId=3", "unsupported_parameter"),
        ("page=2&offset=1", "conflicting_parameters"),
        ("page=0", "invalid_field"),
    ]:
        response = await client.get(f"/api/v1/messages?{query}")
        assert response.status_code == 422, query
        assert response.json()["code"] == code, query
    # A cursor Herald never gave out (a date without its offset) is a 400, not a crash.
    forged = base64.urlsafe_b64encode(b"2026-01-01T00:00:00|x").decode()
    response = await client.get("/api/v1/messages", params={"cursor": forged})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"
    for path in ("/api/v1/templates", "/api/v1/tasks", "/api/v1/shortLinks", "/api/v1/senders"):
        response = await client.get(path, params={"nmae": "x"})
        assert response.status_code == 422 and response.json()["code"] == "unknown_parameter"


async def test_cancel_before_sending_then_409(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/messages", json={"messages": [one()]})).json()
    message_id = created[0]["id"]
    response = await client.delete(f"/api/v1/messages/{message_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = await client.delete(f"/api/v1/messages/{message_id}")
    assert again.status_code == 409
    assert again.json()["code"] == "not_cancellable"
    assert "cancelled" in again.json()["error"]
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert [e["status"] for e in message["history"]] == ["queued", "cancelled"]


async def test_twin_cancel_by_group(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": "+14155552671"}, {"phone": "+14155552672"}],
                    "channels": {"sms": {"text": "x"}},
                    "groupId": "grp",
                }
            ]
        },
    )
    response = await client.request(
        "DELETE",
        "/api/v1/messages",
        json={"id": None, "bulkId": None, "groupId": "grp", "flowId": None},
    )
    assert response.status_code == 200
    results = response.json()
    assert len(results) == 2 and all(r["status"] == "cancelled" for r in results)
    assert all(isinstance(r["flowId"], str) for r in results)
    nothing = await client.request("DELETE", "/api/v1/messages", json={})
    assert nothing.status_code == 400 and nothing.json()["code"] == "nothing_to_cancel"


async def test_twin_cancel_answers_every_message_and_never_409(client: httpx.AsyncClient) -> None:
    """Issue 18: one message already final does not fail TWIN's whole cancel request."""
    created = (
        await client.post(
            "/api/v1/messages",
            json={"messages": [one(), one("+14155552672")], "bulkId": "b-1"},
        )
    ).json()
    done, waiting = created[0]["id"], created[1]["id"]
    assert (await client.delete(f"/api/v1/messages/{done}")).status_code == 200
    # As TWIN's SDK sends it: all four keys, the unset ones null; an id Herald never gave
    # out matches nothing.
    response = await client.request(
        "DELETE",
        "/api/v1/messages",
        json={"id": [done, waiting, "no-such-id"], "bulkId": None, "groupId": None, "flowId": None},
    )
    assert response.status_code == 200, response.text
    results = {r["id"]: r for r in response.json()}
    assert set(results) == {done, waiting}
    for r in results.values():
        assert all(isinstance(r[k], str) for k in ("id", "bulkId", "groupId", "flowId", "status"))
        assert r["channel"] == "sms" and r["bulkId"] == "b-1"
    assert results[waiting]["status"] == "cancelled" and results[waiting]["error"] is None
    error = results[done]["error"]
    assert results[done]["status"] == "cancelled"
    assert error["code"] == "not_cancellable" and "already cancelled" in error["message"]
    assert (error["file"], error["line"], error["trace"]) == ("", 0, [])
    by_bulk = await client.request("DELETE", "/api/v1/messages", json={"bulkId": "b-1"})
    assert by_bulk.status_code == 200
    assert [r["error"]["code"] for r in by_bulk.json()] == ["not_cancellable"] * 2
    unknown = await client.request("DELETE", "/api/v1/messages", json={"id": "no-such-id"})
    assert (unknown.status_code, unknown.json()) == (200, [])
    # The one-message route keeps its answers: 404 unknown, 409 already final.
    assert (await client.delete("/api/v1/messages/no-such-id")).status_code == 404
    assert (await client.delete(f"/api/v1/messages/{waiting}")).status_code == 409


async def test_senders_api_validates_and_hides_secrets(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+14155550000",
            "accountSid": "nope",
            "authToken": "t",
        },
    )
    assert bad.status_code == 422 and bad.json()["details"]["field"] == "accountSid"
    # Every problem at once, a secret of another provider among them.
    worse = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+14155550000",
            "authToken": "t",
            "botToken": "123:abc",
            "rateLimit": -3,
            "baseUrl": "notaurl",
        },
    )
    assert worse.status_code == 422 and worse.json()["code"] == "invalid_sender"
    fields = [e["path"] for e in worse.json()["details"]["errors"]]
    assert sorted(fields) == ["accountSid", "baseUrl", "botToken", "rateLimit"]
    good = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+14155550000",
            "accountSid": "AC" + "a" * 32,
            "authToken": "s3cret-token",
            "rateLimit": 5,
        },
    )
    assert good.status_code == 201
    assert "s3cret-token" not in good.text
    assert good.json()["baseUrl"] == "https://api.twilio.com"
    assert good.json()["default"] is True  # a real sender takes over from the sandbox
    listed = await client.get("/api/v1/senders")
    assert "s3cret-token" not in listed.text
    assert {s["provider"] for s in listed.json()["items"]} == {"SANDBOX", "TWILIO"}
    dup = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+14155550000",
            "accountSid": "AC" + "a" * 32,
            "authToken": "x",
        },
    )
    assert dup.status_code == 409 and dup.json()["code"] == "sender_exists"


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/messages",
        "/api/v1/tasks",
        "/api/v1/suppressions",
        "/api/v1/templates",
        "/api/v1/shortLinks",
    ],
)
async def test_an_offset_past_any_list_is_a_clear_422(client: httpx.AsyncClient, path: str) -> None:
    # Found by fuzzing: 10**23 does not fit the databases' integers and was a 500.
    response = await client.get(path, params={"offset": 10**23})
    assert response.status_code == 422, response.text
    assert response.json()["details"]["errors"][0]["path"] == "offset"


TWILIO_SENDER = {
    "channel": "sms",
    "provider": "twilio",
    "from": "+14155550000",
    "accountSid": "AC" + "b" * 32,
    "authToken": "first-token",
    "baseUrl": "http://127.0.0.1:9",
}


async def test_a_sender_with_waiting_messages_is_not_removed(client: httpx.AsyncClient) -> None:
    sender = (await client.post("/api/v1/senders", json=TWILIO_SENDER)).json()
    created = await client.post("/api/v1/messages", json={"messages": [one(), one()]})
    assert created.status_code == 201

    refused = await client.delete(f"/api/v1/senders/{sender['id']}")
    assert refused.status_code == 409
    assert refused.json()["code"] == "sender_in_use"
    assert refused.json()["details"] == {"waiting": 2}
    assert "Cancel them" in refused.json()["error"]
    listed = (await client.get("/api/v1/senders")).json()["items"]
    assert sender["id"] in {s["id"] for s in listed}


async def test_a_removed_sender_keeps_its_history_and_comes_back_when_added_again(
    client: httpx.AsyncClient,
) -> None:
    sender = (await client.post("/api/v1/senders", json=TWILIO_SENDER)).json()
    created = (await client.post("/api/v1/messages", json={"messages": [one()]})).json()
    message_id = created[0]["id"]
    cancelled = await client.request("DELETE", "/api/v1/messages", json={"id": [message_id]})
    assert cancelled.status_code == 200, cancelled.text

    removed = await client.delete(f"/api/v1/senders/{sender['id']}")
    assert removed.status_code == 204, removed.text
    listed = (await client.get("/api/v1/senders")).json()["items"]
    assert sender["id"] not in {s["id"] for s in listed}
    again = await client.delete(f"/api/v1/senders/{sender['id']}")
    assert again.status_code == 404 and again.json()["code"] == "sender_not_found"
    # The message sent through it still reads whole.
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["status"] == "cancelled" and message["provider"]["name"] == "twilio"
    # Never chosen again: not by its number, and it is no longer the default.
    by_number = one()
    by_number["channels"]["sms"]["from"] = TWILIO_SENDER["from"]
    refused = await client.post("/api/v1/messages", json={"messages": [by_number]})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_sender"
    unrouted = await client.post("/api/v1/messages", json={"messages": [one()]})
    assert unrouted.status_code == 422 and unrouted.json()["code"] == "no_sender"

    # Registering the number again (a new auth token, say) brings the same sender back.
    back = await client.post("/api/v1/senders", json={**TWILIO_SENDER, "authToken": "new"})
    assert back.status_code == 201, back.text
    assert back.json()["id"] == sender["id"] and back.json()["default"] is True
    assert (await client.post("/api/v1/messages", json={"messages": [one()]})).status_code == 201


async def test_a_sender_that_never_sent_is_deleted_and_the_next_takes_over_as_default(
    client: httpx.AsyncClient,
) -> None:
    sender = (await client.post("/api/v1/senders", json=TWILIO_SENDER)).json()
    second = {**TWILIO_SENDER, "from": "+14155550001"}
    other = (await client.post("/api/v1/senders", json=second)).json()
    assert sender["default"] is True and other["default"] is False

    assert (await client.delete(f"/api/v1/senders/{sender['id']}")).status_code == 204
    listed = {s["id"]: s for s in (await client.get("/api/v1/senders")).json()["items"]}
    assert sender["id"] not in listed and listed[other["id"]]["default"] is True
    again = (await client.post("/api/v1/senders", json=TWILIO_SENDER)).json()
    assert again["id"] != sender["id"] and again["default"] is False


async def test_a_sender_is_changed_in_place(client: httpx.AsyncClient) -> None:
    first = (await client.post("/api/v1/senders", json=TWILIO_SENDER)).json()
    second = {**TWILIO_SENDER, "from": "+14155550001"}
    other = (await client.post("/api/v1/senders", json=second)).json()
    path = f"/api/v1/senders/{other['id']}"

    taken = await client.patch(path, json={"default": True, "rateLimit": 5})
    assert taken.status_code == 200, taken.text
    assert taken.json()["default"] is True and taken.json()["rateLimit"] == 5
    listed = {s["id"]: s for s in (await client.get("/api/v1/senders")).json()["items"]}
    assert listed[first["id"]]["default"] is False
    cleared = await client.patch(path, json={"rateLimit": None, "authToken": "rotated"})
    assert cleared.json()["rateLimit"] is None and "rotated" not in cleared.text

    for body, status, code in [
        ({"default": False}, 422, "default_required"),
        ({"rateLimit": -1}, 422, "invalid_sender"),
        ({"accountSid": "nope"}, 422, "invalid_sender"),
        ({"from": "+14155550002"}, 422, "unknown_field"),
        ({"channel": "email"}, 422, "unknown_field"),
    ]:
        refused = await client.patch(path, json=body)
        assert (refused.status_code, refused.json()["code"]) == (status, code), body
    after = {s["id"]: s for s in (await client.get("/api/v1/senders")).json()["items"]}
    assert after[other["id"]] == cleared.json()  # the refusals changed nothing
    kept = await client.patch(path, json={"default": None, "smartEncoding": None})
    assert kept.json() == cleared.json()  # null leaves a flag as it is
    missing = await client.patch("/api/v1/senders/nope", json={"rateLimit": 1})
    assert missing.status_code == 404 and missing.json()["code"] == "sender_not_found"
