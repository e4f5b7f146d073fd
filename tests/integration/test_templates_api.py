"""Templates over the real API on both databases: CRUD, versions, isolation, 422s, preview."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.config import Settings
from herald.domain.segments import analyze, smart_encode
from herald.errors import NotFound
from herald.services.templates.rendering import render_channel
from herald.services.templates.resource import load_template
from tests.servers import RunningHerald, running_herald

ORDER = {
    "name": "order shipped",
    "channels": {
        "sms": {"text": "Hi {{ name }}, order {{ order }} ships {{ when|date }}."},
        "email": {
            "subject": "Order {{ order }}",
            "text": "Hi {{ name }}",
            "html": "<p>Hi <b>{{ name }}</b>, total {{ total|money('EUR') }}</p>",
        },
    },
    "allowedTimeRanges": [["09:00", "21:00:00"]],
}


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings, run_workers=False) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        yield c


async def create(client: httpx.AsyncClient, body: dict[str, Any] = ORDER) -> str:
    response = await client.post("/api/v1/templates", json=body)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"id"}
    template_id: str = response.json()["id"]
    return template_id


async def test_create_and_get_in_twin_shape(client: httpx.AsyncClient) -> None:
    template_id = await create(client)
    response = await client.get(f"/api/v1/templates/{template_id}")
    assert response.status_code == 200
    t = response.json()
    assert t["id"] == template_id
    assert t["name"] == "order shipped"
    assert t["channels"] == ORDER["channels"]
    assert t["allowedTimeRanges"] == [["09:00:00", "21:00:00"]]
    assert t["createdAt"] and t["updatedAt"] is None
    assert t["version"] == 1 and t["currentVersion"] == 1
    assert t["variables"] == ["name", "order", "total", "when"]


async def test_twin_sdk_example_body_is_accepted(client: httpx.AsyncClient) -> None:
    body = {
        "name": "twin",
        "channels": {
            "SMS": {"text": "…", "from": "Twin24", "provider": "INFOBIP", "validityPeriod": 10}
        },
        "allowedTimeRanges": [["00:00:00", "03:59:59"], ["06:00:00", "13:59:59"]],
    }
    template_id = await create(client, body)
    t = (await client.get(f"/api/v1/templates/{template_id}")).json()
    assert t["channels"] == {"sms": body["channels"]["SMS"]}  # channel keys are case-insensitive
    assert t["allowedTimeRanges"] == body["allowedTimeRanges"]
    # Minimal body: channels and ranges are never null.
    empty = (await client.get(f"/api/v1/templates/{await create(client, {'name': 'e'})}")).json()
    assert empty["channels"] == {} and empty["allowedTimeRanges"] == []


async def test_edits_create_versions_and_history_stays(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    template_id = await create(client)
    new_sms = {"sms": {"text": "Order {{ order }} is on its way"}}
    response = await client.put(f"/api/v1/templates/{template_id}", json={"channels": new_sms})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.json()["name"] == "order shipped"  # left out: unchanged
    assert response.json()["allowedTimeRanges"] == [["09:00:00", "21:00:00"]]
    response = await client.put(f"/api/v1/templates/{template_id}", json={"name": "renamed"})
    assert response.json()["version"] == 3
    assert response.json()["channels"] == new_sms

    current = (await client.get(f"/api/v1/templates/{template_id}")).json()
    assert current["version"] == 3 and current["name"] == "renamed"
    assert current["updatedAt"] is not None
    v1 = (await client.get(f"/api/v1/templates/{template_id}", params={"version": 1})).json()
    assert v1["channels"] == ORDER["channels"] and v1["version"] == 1
    assert v1["currentVersion"] == 3
    versions = (await client.get(f"/api/v1/templates/{template_id}/versions")).json()
    assert [v["version"] for v in versions["items"]] == [3, 2, 1]
    assert [v["current"] for v in versions["items"]] == [True, False, False]
    missing = await client.get(f"/api/v1/templates/{template_id}", params={"version": 9})
    assert missing.status_code == 404
    assert missing.json()["code"] == "template_version_not_found"

    # The seam gives the version a message records and renders from.
    async with herald.herald.sessions() as session:
        snapshot = await load_template(session, herald.project.project_id, template_id)
        old = await load_template(session, herald.project.project_id, template_id, version=1)
    assert snapshot.version == 3 and snapshot.name == "renamed"
    assert render_channel(snapshot, "sms", {}, {"order": 7}) == {"text": "Order 7 is on its way"}
    assert old.version == 1 and "email" in old.channels


async def test_list_with_twin_filters(client: httpx.AsyncClient) -> None:
    ids = [await create(client, {**ORDER, "name": f"t{i}"}) for i in range(3)]
    listed = (await client.get("/api/v1/templates")).json()
    assert listed["count"] == 3
    assert [t["id"] for t in listed["items"]] == ids[::-1]  # newest first
    by_name = (await client.get("/api/v1/templates", params={"name": "t1"})).json()
    assert [t["id"] for t in by_name["items"]] == [ids[1]]
    comma = (await client.get("/api/v1/templates", params={"id": f"{ids[0]},{ids[2]}"})).json()
    assert {t["id"] for t in comma["items"]} == {ids[0], ids[2]}
    # PHP's http_build_query: id[0]=a&id[1]=b.
    php = await client.get(f"/api/v1/templates?id%5B0%5D={ids[0]}&id%5B1%5D={ids[1]}")
    assert {t["id"] for t in php.json()["items"]} == {ids[0], ids[1]}
    page = (await client.get("/api/v1/templates", params={"limit": 1, "offset": 1})).json()
    assert page["count"] == 3 and [t["id"] for t in page["items"]] == [ids[1]]


async def test_delete_is_soft_and_final(herald: RunningHerald, client: httpx.AsyncClient) -> None:
    template_id = await create(client)
    response = await client.request("DELETE", f"/api/v1/templates/{template_id}", json=[])
    assert response.status_code == 204
    for method, extra in (("GET", {}), ("PUT", {"json": {"name": "x"}}), ("DELETE", {})):
        gone = await client.request(method, f"/api/v1/templates/{template_id}", **extra)
        assert gone.status_code == 404, method
        assert gone.json()["code"] == "template_not_found"
    assert (await client.get("/api/v1/templates")).json()["count"] == 0
    async with herald.herald.sessions() as session:
        with pytest.raises(NotFound) as e:
            await load_template(session, herald.project.project_id, template_id)
    assert e.value.code == "template_not_found"


async def test_projects_cannot_see_each_other(herald: RunningHerald) -> None:
    other = await herald.new_project("other")
    async with herald.client() as mine, herald.client(other.api_key) as theirs:
        template_id = await create(mine)
        assert (await theirs.get("/api/v1/templates")).json() == {"count": 0, "items": []}
        path = f"/api/v1/templates/{template_id}"
        assert (await theirs.get(path)).status_code == 404
        assert (await theirs.put(path, json={"name": "stolen"})).status_code == 404
        assert (await theirs.post(f"{path}/preview", json={})).status_code == 404
        assert (await theirs.delete(path)).status_code == 404
        assert (await mine.get(path)).json()["name"] == "order shipped"
    async with herald.herald.sessions() as session:
        with pytest.raises(NotFound):
            await load_template(session, other.project_id, template_id)


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({"channels": {}}, "invalid_template_name", "name"),
        ({"name": "  "}, "invalid_template_name", "name"),
        ({"name": "x" * 201}, "invalid_template_name", "name"),
        ({"name": "t", "channels": {"fax": {"text": "hi"}}}, "unknown_channel", "channels.fax"),
        (
            {"name": "t", "channels": {"sms": {"text": "hi", "subject": "x"}}},
            "unknown_field",
            "channels.sms.subject",
        ),
        ({"name": "t", "channels": {"sms": {"text": 5}}}, "invalid_field", "channels.sms.text"),
        ({"name": "t", "channels": {"sms": "hi"}}, "invalid_channel", "channels.sms"),
        (
            {"name": "t", "channels": {"sms": {"text": "x", "validityPeriod": "10"}}},
            "invalid_field",
            "channels.sms.validityPeriod",
        ),
        (
            {"name": "t", "channels": {"whatsapp": {"buttons": "Yes"}}},
            "invalid_field",
            "channels.whatsapp.buttons",
        ),
        (
            {"name": "t", "channels": {"sms": {"text": "{{ ''.__class__ }}"}}},
            "template_unsafe",
            "channels.sms.text",
        ),
        ({"name": "t", "allowedTimeRanges": [["9", "21:00"]]}, "invalid_time_range", None),
        ({"name": "t", "allowedTimeRanges": "always"}, "invalid_time_range", None),
        ({"name": "t", "sendAt": "now"}, "unknown_field", None),
    ],
)
async def test_bad_templates_are_422_with_a_code_and_store_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], code: str, path: str | None
) -> None:
    response = await client.post("/api/v1/templates", json=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["code"] == code
    assert isinstance(data["error"], str) and data["error"]
    if path is not None:
        assert data["details"]["errors"][0]["path"] == path
    assert (await client.get("/api/v1/templates")).json()["count"] == 0


async def test_syntax_errors_name_field_line_and_column(client: httpx.AsyncClient) -> None:
    body = {"name": "t", "channels": {"sms": {"text": "Hi {{ name }"}}}
    response = await client.post("/api/v1/templates", json=body)
    assert response.status_code == 422
    data = response.json()
    assert data["code"] == "template_syntax_error"
    assert data["details"]["field"] == "channels.sms.text"
    assert (data["details"]["line"], data["details"]["column"]) == (1, 12)
    assert "line 1, column 12" in data["error"]

    body = {
        "name": "t",
        "channels": {
            "email": {"subject": "ok {{ a }}", "html": "<p>\n  {% if x %}\n</p>"},
            "sms": {"text": "{{ a b }}"},
        },
    }
    data = (await client.post("/api/v1/templates", json=body)).json()
    assert data["code"] == "template_syntax_error"
    errors = {e["path"]: (e["line"], e["column"]) for e in data["details"]["errors"]}
    # An unclosed block is reported where it opens.
    assert errors == {"channels.email.html": (2, 6), "channels.sms.text": (1, 6)}


async def test_bad_update_changes_nothing(client: httpx.AsyncClient) -> None:
    template_id = await create(client)
    bad = {"channels": {"sms": {"text": "{% for %}"}}, "name": ""}
    response = await client.put(f"/api/v1/templates/{template_id}", json=bad)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert len(response.json()["details"]["errors"]) == 2
    t = (await client.get(f"/api/v1/templates/{template_id}")).json()
    assert t["version"] == 1 and t["channels"] == ORDER["channels"]


# --- preview ---------------------------------------------------------------


async def test_preview_renders_every_channel_with_sms_figures(client: httpx.AsyncClient) -> None:
    template_id = await create(client)
    variables = {"name": "<Zoë>", "order": 42, "when": "2026-03-08", "total": 1234.5}
    response = await client.post(
        f"/api/v1/templates/{template_id}/preview", json={"variables": variables}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["templateId"] == template_id and data["version"] == 1
    sms = data["channels"]["sms"]
    text = "Hi <Zoë>, order 42 ships 08.03.2026."
    assert sms["text"] == text == sms["textAfterShortening"]
    info = analyze(text)
    assert sms["encoding"] == info.encoding.value == "UCS-2"  # ë is not GSM-7
    assert sms["characters"] == info.characters
    assert sms["segments"] == info.segments == 1
    assert sms["perSegment"] == info.per_segment == 70
    assert sms["remaining"] == info.remaining
    assert sms["ucs2Characters"] == ["ë"]
    assert sms["smartEncoding"]["applied"] is False
    email = data["channels"]["email"]
    assert email["subject"] == "Order 42"
    assert email["text"] == "Hi <Zoë>"
    assert email["html"] == "<p>Hi <b>&lt;Zoë&gt;</b>, total 1 234.50 EUR</p>"

    only_sms = await client.post(
        f"/api/v1/templates/{template_id}/preview",
        json={"variables": variables, "channels": ["SMS"]},
    )
    assert list(only_sms.json()["channels"]) == ["sms"]


async def test_preview_names_every_missing_variable(client: httpx.AsyncClient) -> None:
    template_id = await create(client)
    response = await client.post(
        f"/api/v1/templates/{template_id}/preview", json={"variables": {"name": "Ann"}}
    )
    assert response.status_code == 422
    data = response.json()
    assert data["code"] == "missing_variables"
    assert data["details"]["missing"] == ["order", "total", "when"]
    assert data["details"]["fields"]["channels.sms.text"] == ["order", "when"]
    assert data["details"]["fields"]["channels.email.html"] == ["total"]
    assert "order, total, when" in data["error"]

    wrong = await client.post(
        f"/api/v1/templates/{template_id}/preview", json={"channels": ["viber"]}
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "unknown_channel"


async def test_preview_with_short_links_stores_nothing(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    long_url = "https://shop.example.com/orders/123456789/tracking?utm_source=sms&utm_medium=x"
    body = {
        "name": "links",
        "channels": {"sms": {"text": "Track it: " + long_url + " — thanks, {{ name }}…"}},
    }
    template_id = await create(client, body)
    response = await client.post(
        f"/api/v1/templates/{template_id}/preview",
        json={"variables": {"name": "Ann"}, "useShortLinks": True},
    )
    sms = response.json()["channels"]["sms"]
    short = f"{herald.url}/XXXXXXXX"
    after = f"Track it: {short} — thanks, Ann…"
    assert sms["textAfterShortening"] == after
    assert sms["links"] == [{"url": long_url, "shortUrl": short}]
    info = analyze(after)
    assert (sms["characters"], sms["segments"], sms["remaining"]) == (
        info.characters,
        info.segments,
        info.remaining,
    )
    assert sorted(sms["ucs2Characters"]) == sorted(["—", "…"])
    smart = sms["smartEncoding"]
    assert smart["text"] == smart_encode(after) == f"Track it: {short} - thanks, Ann..."
    assert smart["encoding"] == "GSM-7"
    assert smart["segments"] == analyze(smart_encode(after)).segments
    assert smart["applied"] is False
    assert (await client.get("/api/v1/shortLinks")).json()["count"] == 0


async def test_smart_encoding_follows_the_sender_setting(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/senders",
        json={"channel": "sms", "provider": "sandbox", "from": "Smart", "smartEncoding": True},
    )
    assert response.status_code == 201, response.text
    assert response.json()["smartEncoding"] is True
    senders = (await client.get("/api/v1/senders")).json()["items"]
    assert {s["from"]: s["smartEncoding"] for s in senders}["Smart"] is True
    assert [s["smartEncoding"] for s in senders if s["from"] != "Smart"] == [False]

    template_id = await create(client, {"name": "q", "channels": {"sms": {"text": "“Hi” – ok"}}})
    path = f"/api/v1/templates/{template_id}/preview"

    async def applied(body: dict[str, Any]) -> bool:
        response = await client.post(path, json=body)
        assert response.status_code == 200, response.text
        result: bool = response.json()["channels"]["sms"]["smartEncoding"]["applied"]
        return result

    assert await applied({}) is False  # the default sandbox sender
    assert await applied({"from": "Smart"}) is True
    assert await applied({"from": "Smart", "smartEncoding": False}) is False
    assert await applied({"smartEncoding": True}) is True
    unknown = await client.post(path, json={"from": "Nobody"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_sender"


async def test_ad_hoc_preview(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/templates/preview",
        json={
            "channels": {"sms": {"text": "Code {{ code }}"}, "push": {"title": "{{ code }}"}},
            "variables": {"code": "1234"},
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["templateId"] is None and data["variables"] == ["code"]
    assert data["channels"]["sms"]["text"] == "Code 1234"
    assert data["channels"]["sms"]["segments"] == 1
    assert data["channels"]["push"] == {"title": "1234"}
    bad = await client.post(
        "/api/v1/templates/preview", json={"channels": {"sms": {"text": "{{ x"}}}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "template_syntax_error"
    assert (await client.get("/api/v1/templates")).json()["count"] == 0


async def test_preview_of_a_render_error_is_422(client: httpx.AsyncClient) -> None:
    template_id = await create(
        client, {"name": "n", "channels": {"sms": {"text": "{{ n|number }}"}}}
    )
    response = await client.post(
        f"/api/v1/templates/{template_id}/preview", json={"variables": {"n": "abc"}}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "template_render_error"
    assert response.json()["details"]["field"] == "channels.sms.text"


# --- the CLI, run as a user runs it -------------------------------------------

HERALD_BIN = str(Path(sys.executable).parent / "herald")


async def test_cli_templates(herald: RunningHerald, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HERALD_URL": herald.url,
        "HERALD_API_KEY": herald.project.api_key,
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HERALD_BIN, "templates", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def herald_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run, *args)

    created = await herald_cli("create", "--name", "otp", "--sms-text", "Code {{ code }}")
    assert created.returncode == 0, created.stderr
    template_id = re.search(r"Template (\S+) created", created.stdout)
    assert template_id is not None
    tid = template_id.group(1)

    body = tmp_path / "order.json"
    body.write_text(json.dumps(ORDER), encoding="utf-8")
    from_file = await herald_cli("create", "--file", str(body))
    assert from_file.returncode == 0, from_file.stderr

    listed = await herald_cli("list")
    assert "otp" in listed.stdout and "order shipped" in listed.stdout
    assert "2 template(s)" in listed.stdout

    updated = await herald_cli("update", tid, "--sms-text", "Your code: {{ code }} – {{ ttl }} min")
    assert updated.returncode == 0, updated.stderr
    assert "version 2" in updated.stdout
    shown = await herald_cli("show", tid)
    assert json.loads(shown.stdout)["channels"]["sms"]["text"].startswith("Your code:")
    old = await herald_cli("show", tid, "--version", "1")
    assert json.loads(old.stdout)["channels"]["sms"]["text"] == "Code {{ code }}"

    preview = await herald_cli("preview", tid, "--var", "code=1234", "--var", "ttl=5", "--json")
    assert preview.returncode == 0, preview.stderr
    sms = json.loads(preview.stdout)["channels"]["sms"]
    assert sms["text"] == "Your code: 1234 – 5 min"
    assert sms["encoding"] == "UCS-2" and sms["ucs2Characters"] == ["–"]
    table = await herald_cli("preview", tid, "-v", "code=1", "-v", "ttl=2", "--smart-encoding")
    assert "UCS-2" in table.stdout and "applied: GSM-7" in table.stdout

    missing = await herald_cli("preview", tid)
    assert missing.returncode == 1
    assert "missing_variables" in missing.stderr and "code, ttl" in missing.stderr
    bad = await herald_cli("create", "--name", "bad", "--sms-text", "Hi {{ name }")
    assert bad.returncode == 1
    assert "line 1, column 12" in bad.stderr and "template_syntax_error" in bad.stderr

    deleted = await herald_cli("delete", tid)
    assert deleted.returncode == 0
    assert (await herald_cli("show", tid)).returncode == 1
    helped = await herald_cli("--help")
    for command in ("create", "list", "show", "update", "delete", "preview"):
        assert command in helped.stdout


async def test_list_sorts_by_creation_and_returns_only_the_fields_asked(
    client: httpx.AsyncClient,
) -> None:
    ids = [await create(client, {**ORDER, "name": f"t{i}"}) for i in range(2)]

    async def listed(query: str) -> list[dict[str, Any]]:
        response = await client.get(f"/api/v1/templates?{query}")
        assert response.status_code == 200, response.text
        assert response.json()["count"] == 2  # TWIN's SDK needs count and items, whatever asked
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    assert [t["id"] for t in await listed("sort=-createdAt")] == ids[::-1]
    assert [t["id"] for t in await listed("sort=createdAt")] == ids
    expected = [{"id": ids[0], "name": "t0"}, {"id": ids[1], "name": "t1"}]
    assert await listed("sort=createdAt&fields=id,name") == expected
    assert await listed("sort=createdAt&fields%5B0%5D=id&fields%5B1%5D=name") == expected
    # Templates have no status: the answer names the orders this list offers.
    bad = await client.get("/api/v1/templates", params={"sort": "status"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_sort"
    assert "createdAt, -createdAt" in bad.json()["error"]
    assert bad.json()["details"]["allowed"] == ["createdAt", "-createdAt"]
    bad = await client.get("/api/v1/templates", params={"fields": "colour"})
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_field"
