"""The OpenAPI document tells the truth: bearer auth, Herald's error body, real 2xx bodies.

``make fuzz`` holds a live Herald to this document; these tests hold the document itself,
and the answers documented without being validated (the hot routes answer prebuilt bytes).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from herald.api.webhooks import twilio_status
from herald.schemas.out.base import ErrorBody
from herald.schemas.out.messages import BatchResult, MessageDetail, MessageList
from tests.e2e.helpers import wait_status

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def test_every_operation_declares_its_auth_errors_and_answer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The project's API key, printed once by 'herald projects create', or "
        "a user's token from POST /api/v1/auth/login (TWIN's IAM).",
    }
    assert "HTTPValidationError" not in response.text  # Herald never answers FastAPI's 422
    found = operations(document)
    assert ("/webhooks/twilio/status/{attempt_id}", "post") in {(p, m) for p, m, _ in found}
    for path, method, operation in found:
        where = f"{method.upper()} {path}"
        # TWIN's IAM routes hand out the tokens: they take none.
        on_api = path.startswith("/api/v1/") and not path.startswith("/api/v1/auth/")
        assert operation.get("security") == ([{"bearer": []}] if on_api else None), where
        headers = [
            p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
        ]
        assert "authorization" not in headers, where
        statuses = operation["responses"]
        assert any(s.startswith("2") for s in statuses), where
        for status, answer in statuses.items():
            if status[0] in "45":
                assert answer["content"] == ERROR_BODY, f"{where} {status}"
        if on_api:
            assert {"401", "422"} <= set(statuses), where


async def test_prebuilt_answers_match_their_documented_models(client: httpx.AsyncClient) -> None:
    # Checked strictly and with no undeclared key, as schemathesis reads the document.
    sent = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {"destinations": [{"phone": "+14155552671"}], "channels": {"sms": {"text": "hi"}}}
            ]
        },
    )
    assert sent.status_code == 201, sent.text
    results = TypeAdapter(list[BatchResult]).validate_json(sent.content, strict=True)
    message_id = results[0].id
    await wait_status(client, message_id, {"delivered"})

    one = await client.get(f"/api/v1/messages/{message_id}")
    detail = MessageDetail.model_validate_json(one.content, strict=True)
    assert detail.deliveries[0].attempts and detail.history
    listed = await client.get("/api/v1/messages", params={"id": message_id})
    assert MessageList.model_validate_json(listed.content, strict=True).items[0].id == message_id

    missing = await client.get("/api/v1/messages/no-such-id")
    assert missing.status_code == 404
    ErrorBody.model_validate_json(missing.content, strict=True)


async def test_validated_answers_keep_their_keys(client: httpx.AsyncClient) -> None:
    # Response models must not add keys a service leaves out (a Telegram sender's webhook
    # settings), nor drop any it gives.
    senders = (await client.get("/api/v1/senders")).json()
    assert set(senders["items"][0]) == {
        "id",
        "companyId",
        "from",
        "channel",
        "provider",
        "price",
        "accountSid",
        "baseUrl",
        "rateLimit",
        "default",
        "smartEncoding",
        "createdAt",
    }
    created = await client.post("/api/v1/tasks", json={"name": "spring"})
    task_id = created.json()["id"]
    assert created.json() == {"id": task_id}
    cancelled = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert cancelled.json() == {"id": task_id, "status": "cancelled", "cancelledMessageCount": 0}


async def test_a_single_value_parameter_given_twice_is_refused(client: httpx.AsyncClient) -> None:
    # Found by `make fuzz`: only the last 'name' was read, and the list looked like the answer.
    twice = await client.get("/api/v1/tasks", params=[("name", "a"), ("name", "b")])
    assert twice.status_code == 422, twice.text
    assert twice.json()["code"] == "repeated_parameter"
    assert "'name'" in twice.json()["error"]
    # List filters take several values, however they are spelt.
    listed = await client.get("/api/v1/messages", params=[("status", "queued"), ("status", "sent")])
    assert listed.status_code == 200, listed.text


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_allow_lists_exactly_the_documented_methods(client: httpx.AsyncClient) -> None:
    # Found by `make fuzz` (ST205): OPTIONS /api/v1/messages/bulk listed GET and DELETE, the
    # methods of /api/v1/messages/{message_id}, which the fixed path fell through to.
    document = (await client.get("/openapi.json")).json()
    for path, methods in document["paths"].items():
        if path.startswith(twilio_status.PATH_PREFIX):
            continue  # answered ahead of routing, whatever the method
        response = await client.options(_concrete(path))
        assert response.status_code == 405, f"{path}: {response.text}"
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in methods}, path
        assert response.json()["details"]["allowed"] == response.headers["allow"].split(", ")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/v1/messages/bulk", "POST"),
        ("DELETE", "/api/v1/messages/bulk", "POST"),
        ("GET", "/api/v1/templates/preview", "POST"),
        ("PUT", "/api/v1/templates/preview", "POST"),
        ("DELETE", "/api/v1/templates", "GET, POST"),
    ],
)
async def test_a_fixed_path_is_not_taken_for_a_templated_one(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    # GET /api/v1/messages/bulk was GET /api/v1/messages/{message_id} for a message "bulk".
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"
    assert response.json()["error"] == f"{method} is not allowed at this address; use {allow}."


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/v1/templates/"), ("GET", "/api/v1/messages/"), ("POST", "/api/v1/tasks/")],
)
async def test_a_trailing_slash_is_a_404_not_a_redirect(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    # Found by `make fuzz` (ST103): DELETE /api/v1/templates/ was an undocumented 307.
    response = await client.request(method, path, json={"name": "t"})
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert response.json() == {
        "error": "There is nothing at this address: Herald's addresses do not end with '/'.",
        "code": "not_found",
        "details": {},
    }
    assert (await client.get("/api/v1/templates")).json()["count"] == 0


async def test_list_filters_are_documented_as_the_text_they_are(
    client: httpx.AsyncClient,
) -> None:
    # Found by `make fuzz` (ST201): ?id=false and ?taskId=%C2%84 are valid one-value filters,
    # but the document said "an array" (or null), so it called their 200 a mistake.
    document = (await client.get("/openapi.json")).json()
    filters = {
        (path, p["name"]): p["schema"]
        for path, methods in document["paths"].items()
        for p in methods.get("get", {}).get("parameters", [])
        if "Comma-separated" in p.get("description", "")
    }
    assert {("/api/v1/messages", "taskId"), ("/api/v1/shortLinks", "taskId")} <= set(filters)
    assert {("/api/v1/tasks", "status"), ("/api/v1/templates", "id")} <= set(filters)
    for (path, name), schema in filters.items():
        assert schema["anyOf"] == [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
        ], (path, name)
        # A message status is one of Herald's statuses (400 invalid_status otherwise).
        values = ("queued", "sent,failed") if name == "status" else ("false", "\u0084", "a,b")
        for value in values:
            response = await client.get(path, params={name: value})
            assert response.status_code == 200, (path, name, response.text)
        repeated = await client.get(path, params=[(name, values[0]), (name, values[-1])])
        assert repeated.status_code == 200, (path, name, repeated.text)


async def test_uploaded_files_are_documented_as_any_bytes(client: httpx.AsyncClient) -> None:
    # Found by `make fuzz` (ST201): a file part holding "-7.8e+248" was a number to the
    # document (contentMediaType alone reads as text), so its 202 looked like a mistake.
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path in ("/api/v1/tasks/{task_id}", "/api/v1/messages/bulk"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        part = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]["messages"]
        file = part.get("items", part)
        assert (file["type"], file["format"]) == ("string", "binary"), path
        # Found too: async=true, a boolean to the document, is text on the wire.
        flag = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]["async"]
        assert "type" not in flag and "anyOf" not in flag, path
    created = await client.post("/api/v1/tasks", json={"name": "numbers"})
    task_id = created.json()["id"]
    response = await client.post(
        f"/api/v1/tasks/{task_id}",
        files={"messages": ("messages", b"-7.829460929272171e+248")},
        data={"async": "true"},
    )
    assert response.status_code == 202, response.text
