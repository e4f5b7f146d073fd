"""The OpenAPI document tells the truth: bearer auth, Herald's error body, real 2xx bodies.

``make fuzz`` holds a live Herald to this document; these tests hold the document itself,
and the answers documented without being validated (the hot routes answer prebuilt bytes).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter

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
        "description": "The project's API key, printed once by 'herald projects create'.",
    }
    assert "HTTPValidationError" not in response.text  # Herald never answers FastAPI's 422
    found = operations(document)
    assert ("/webhooks/twilio/status/{attempt_id}", "post") in {(p, m) for p, m, _ in found}
    for path, method, operation in found:
        where = f"{method.upper()} {path}"
        on_api = path.startswith("/api/v1/")
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
