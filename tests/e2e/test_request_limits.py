"""Request bodies: the API key is checked before any of a body is read, and every body has a cap.

Most requests here announce a body and send none (or only part) of it, then wait for the
answer: a server that read the body before answering would wait for the rest for ever, and
the test fails on its timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from herald.config import Settings
from tests.e2e.rawhttp import chunk, exchange, head
from tests.servers import RunningHerald, running_herald

JSON_LIMIT = 256 * 1024
UPLOAD_LIMIT = 1024 * 1024


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    limits = {"max_json_body_bytes": JSON_LIMIT, "max_upload_bytes": UPLOAD_LIMIT}
    async with running_herald(settings.model_copy(update=limits), run_workers=False) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


JSON = {"Content-Type": "application/json"}
CSV_UPLOAD = {"Content-Type": "multipart/form-data; boundary=xyz"}


@pytest.mark.parametrize(
    ("path", "kind", "framing"),
    [
        ("/api/v1/messages", JSON, {"Content-Length": str(20 * 1024 * 1024)}),
        ("/api/v1/messages", JSON, {"Content-Length": "1000"}),  # under the cap too
        ("/api/v1/messages", JSON, {"Transfer-Encoding": "chunked"}),
        ("/api/v1/messages/bulk", CSV_UPLOAD, {"Content-Length": str(20 * 1024 * 1024)}),
        ("/api/v1/tasks/t1", CSV_UPLOAD, {"Transfer-Encoding": "chunked"}),
    ],
)
@pytest.mark.parametrize(
    ("auth", "code"),
    [({}, "missing_api_key"), (bearer("hrld_wrong"), "invalid_api_key")],
)
async def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(
    herald: RunningHerald,
    path: str,
    kind: dict[str, str],
    framing: dict[str, str],
    auth: dict[str, str],
    code: str,
) -> None:
    answer = await exchange(herald.url, head("POST", path, {**auth, **kind, **framing}))
    assert answer.status == 401
    assert answer.json()["code"] == code
    # The body the client may still be sending is not wanted: no reading it to its end.
    assert answer.headers["connection"] == "close"


async def test_a_json_body_over_the_cap_is_refused_unread(herald: RunningHerald) -> None:
    length = {"Content-Length": str(JSON_LIMIT + 1)}
    request = head("POST", "/api/v1/messages", {**bearer(herald.project.api_key), **JSON, **length})
    answer = await exchange(herald.url, request)
    assert answer.status == 413
    body = answer.json()
    assert body["code"] == "body_too_large"
    assert "262,144 bytes" in body["error"]
    assert "HERALD_MAX_JSON_BODY_BYTES" in body["error"]
    assert body["details"] == {"limit": JSON_LIMIT, "setting": "HERALD_MAX_JSON_BODY_BYTES"}
    assert answer.headers["connection"] == "close"


async def test_a_chunked_body_is_cut_off_at_the_cap(herald: RunningHerald) -> None:
    chunked = {"Transfer-Encoding": "chunked"}
    request = head(
        "POST", "/api/v1/messages", {**bearer(herald.project.api_key), **JSON, **chunked}
    )
    piece = b" " * (64 * 1024)
    over = [chunk(piece)] * (JSON_LIMIT // len(piece)) + [chunk(b" ")]  # one byte over, unended
    answer = await exchange(herald.url, request, *over)
    assert answer.status == 413
    assert answer.json()["code"] == "body_too_large"
    assert answer.headers["connection"] == "close"


async def test_a_chunked_body_under_the_cap_is_read_as_usual(herald: RunningHerald) -> None:
    chunked = {"Transfer-Encoding": "chunked"}
    request = head(
        "POST", "/api/v1/messages", {**bearer(herald.project.api_key), **JSON, **chunked}
    )
    message = {"destinations": [{"phone": "+14155552671"}], "channels": {"sms": {"text": "Hi"}}}
    payload = json.dumps({"messages": [message]}).encode()
    answer = await exchange(
        herald.url, request, chunk(payload[:10]), chunk(payload[10:]), b"0\r\n\r\n"
    )
    assert answer.status == 201, answer.body
    assert answer.json()[0]["status"] == "queued"


def csv_form(rows: int) -> bytes:
    lines = "phone,name\r\n" + "".join(f"+1415555{i % 10000:04d},Ann {i}\r\n" for i in range(rows))
    return (
        b'--xyz\r\nContent-Disposition: form-data; name="async"\r\n\r\n1\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="messages"; filename="list.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + lines.encode() + b"\r\n--xyz--\r\n"
    )


async def test_an_upload_over_its_cap_is_refused(herald: RunningHerald) -> None:
    auth = bearer(herald.project.api_key)
    form = csv_form(60_000)
    assert len(form) > UPLOAD_LIMIT
    length = {"Content-Length": str(len(form))}
    answer = await exchange(
        herald.url, head("POST", "/api/v1/messages/bulk", {**auth, **CSV_UPLOAD, **length})
    )
    assert answer.status == 413
    assert answer.json()["details"] == {"limit": UPLOAD_LIMIT, "setting": "HERALD_MAX_UPLOAD_BYTES"}
    assert "HERALD_MAX_UPLOAD_BYTES" in answer.json()["error"]
    # Streamed without a length, it is cut off where it passes the cap.
    chunked = {"Transfer-Encoding": "chunked"}
    request = head("POST", "/api/v1/messages/bulk", {**auth, **CSV_UPLOAD, **chunked})
    pieces = [chunk(form[i : i + 65536]) for i in range(0, UPLOAD_LIMIT + 1, 65536)]
    answer = await exchange(herald.url, request, *pieces)
    assert answer.status == 413
    assert answer.json()["code"] == "body_too_large"
    async with herald.client() as client:
        assert (await client.get("/api/v1/tasks")).json()["count"] == 0


async def test_an_upload_larger_than_the_json_cap_is_accepted(herald: RunningHerald) -> None:
    form = csv_form(20_000)
    assert JSON_LIMIT < len(form) < UPLOAD_LIMIT
    async with herald.client() as client:
        response = await client.post("/api/v1/messages/bulk", content=form, headers=CSV_UPLOAD)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("path", "limit"),
    [("/webhooks/telegram/s1", 4 * 1024 * 1024), ("/chat/b1/visitors", 64 * 1024)],
)
async def test_routes_without_an_api_key_have_small_caps(
    herald: RunningHerald, path: str, limit: int
) -> None:
    length = {"Content-Length": str(limit + 1)}
    answer = await exchange(herald.url, head("POST", path, {**JSON, **length}))
    assert answer.status == 413
    assert answer.json()["details"] == {"limit": limit}


async def test_ten_thousand_destinations_fit_the_default_cap(settings: Settings) -> None:
    # The largest such request: 1,000 messages of 10 destinations, each with a 1,600-character
    # Cyrillic text, escaped as PHP's json_encode (TWIN's SDK) writes it.
    text = "Ж" * 1600
    messages = [
        {
            "destinations": [{"phone": f"+1415555{m * 10 + d:04d}"} for d in range(10)],
            "channels": {"sms": {"text": text}},
        }
        for m in range(1000)
    ]
    body = json.dumps({"messages": messages}, ensure_ascii=True).encode()
    assert len(body) > 9_000_000
    async with running_herald(settings, run_workers=False) as herald, herald.client() as client:
        response = await client.post("/api/v1/messages", content=body, headers=JSON, timeout=120)
    assert response.status_code == 201, response.text[:500]
    assert len(response.json()) == 10_000
