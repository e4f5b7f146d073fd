"""Template render budgets over the real API: expensive templates are a 422, the loop keeps going.

A preview, a stored template sent with ``templateId`` and inline text with variables all render
within the installation's budget (HERALD_TEMPLATE_*), and renders run off the event loop: while
one runs until its time limit, ``/healthz`` still answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.config import Settings
from tests.e2e.helpers import add_twilio_sender
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, running_herald

NESTED_LOOPS = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{{ b }}{% endfor %}{% endfor %}"
)
REPEATED = "{% for a in range(100000) %}{{ 'x' * 100000 }}{% endfor %}"


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings, run_workers=False) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        yield c


async def create(client: httpx.AsyncClient, text: str) -> str:
    response = await client.post(
        "/api/v1/templates", json={"name": "heavy", "channels": {"sms": {"text": text}}}
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


def assert_too_expensive(response: httpx.Response, setting: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "template_too_expensive", body
    assert "too expensive to render" in body["error"] and setting in body["error"], body
    return body


async def test_preview_of_nested_loops_is_422_naming_the_loop_limit(
    client: httpx.AsyncClient,
) -> None:
    template_id = await create(client, NESTED_LOOPS)
    response = await client.post(f"/api/v1/templates/{template_id}/preview", json={})
    body = assert_too_expensive(response, "HERALD_TEMPLATE_MAX_LOOP_ITERATIONS")
    assert body["details"]["field"] == "channels.sms.text"
    assert body["details"]["limit"] == "max_loop_iterations"


async def test_ad_hoc_preview_of_repeated_strings_is_422_naming_the_output_limit(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/templates/preview", json={"channels": {"sms": {"text": REPEATED}}}
    )
    assert_too_expensive(response, "HERALD_TEMPLATE_MAX_OUTPUT_CHARACTERS")


async def test_messages_with_an_expensive_template_are_422_and_stop_at_the_first(
    client: httpx.AsyncClient,
) -> None:
    template_id = await create(client, NESTED_LOOPS)
    destinations = [{"phone": f"+1415555{i:04d}"} for i in range(1000)]
    response = await client.post(
        "/api/v1/messages",
        json={"messages": [{"templateId": template_id, "destinations": destinations}]},
    )
    body = assert_too_expensive(response, "HERALD_TEMPLATE_MAX_LOOP_ITERATIONS")
    # One render failed; the 999 others were not attempted.
    assert body["details"]["errors"] == [
        {
            "path": "messages[0].destinations[0]",
            "message": body["error"].removeprefix("messages[0].destinations[0]: "),
            "code": "template_too_expensive",
        }
    ]
    listed = await client.get("/api/v1/messages")
    assert listed.status_code == 200 and listed.json()["count"] == 0, listed.text


async def test_inline_text_with_variables_is_bounded_too(client: httpx.AsyncClient) -> None:
    message = {
        "channels": {"sms": {"text": "{{ name|center(100000000) }}"}},
        "variables": {"name": "Ann"},
        "destinations": [{"phone": "+14155552671"}],
    }
    response = await client.post("/api/v1/messages", json={"messages": [message]})
    assert_too_expensive(response, "HERALD_TEMPLATE_MAX_OUTPUT_CHARACTERS")


async def test_the_limits_are_settings(settings: Settings, fake: FakeTwilio) -> None:
    tight = settings.model_copy(update={"template_max_loop_iterations": 5})
    text = "{% for i in range(n) %}.{% endfor %}"
    async with running_herald(tight, run_workers=False) as herald, herald.client() as client:
        body = {"channels": {"sms": {"text": text}}, "variables": {"n": 5}}
        ok = await client.post("/api/v1/templates/preview", json=body)
        assert ok.status_code == 200, ok.text
        assert ok.json()["channels"]["sms"]["text"] == "....."
        body["variables"] = {"n": 6}
        refused = await client.post("/api/v1/templates/preview", json=body)
        assert_too_expensive(refused, "HERALD_TEMPLATE_MAX_LOOP_ITERATIONS")
        assert "more than 5 times" in refused.json()["error"]


async def test_a_long_render_stops_itself_and_leaves_the_event_loop_free(
    settings: Settings,
) -> None:
    # Loops and output practically unlimited: only the time limit can stop this render
    # (which, on the event loop and without a budget, would take many seconds).
    slow = settings.model_copy(
        update={
            "template_max_loop_iterations": 10**12,
            "template_max_output_characters": 10**12,
            "template_render_timeout_seconds": 3.0,
        }
    )
    text = "{% for a in range(5000) %}{% for b in range(5000) %}{% endfor %}{% endfor %}"
    async with running_herald(slow, run_workers=False) as herald, herald.client() as client:
        preview = asyncio.create_task(
            client.post("/api/v1/templates/preview", json={"channels": {"sms": {"text": text}}})
        )
        answered = 0
        for _ in range(3):
            await asyncio.sleep(0.2)
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert not preview.done(), "the render held the event loop until it finished"
            answered += 1
        response = await preview
    assert answered == 3
    body = assert_too_expensive(response, "HERALD_TEMPLATE_RENDER_TIMEOUT_SECONDS")
    assert "still running after 3 s" in body["error"]
