"""The first ten minutes: the home page, offline API docs, examples that work, `make run`.

Everything a new user follows literally: the links of ``/``, Swagger UI and ReDoc without
Internet, each request example of the OpenAPI document, the README's curl example.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.config import Settings
from tests.servers import RunningHerald, running_herald

ROOT = Path(__file__).resolve().parents[2]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.urls.append(value)


def links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    # No dispatcher: the examples are checked by what the API accepts; nothing is sent.
    async with running_herald(settings, run_workers=False) as running:
        yield running


async def test_the_home_page_links_to_the_docs_and_the_readme(client: httpx.AsyncClient) -> None:
    home = await client.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    found = links(home.text)
    assert {"/docs", "/redoc", "/readme", "/openapi.json"} <= set(found)
    for url in found:
        assert url.startswith("/"), url  # nothing from elsewhere
        assert (await client.get(url)).status_code == 200, url
    readme = await client.get("/readme")
    assert readme.headers["content-type"] == "text/markdown; charset=utf-8"
    assert readme.text.startswith("# Herald\n")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_load_every_asset_from_herald_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200
    assert "https://" not in answer.text and "http://" not in answer.text  # no CDN, no fonts
    # ...and the browser is told to fetch nothing from elsewhere (ReDoc's footer logo would).
    assert answer.headers["content-security-policy"].startswith("default-src 'self';")
    assets = [u for u in links(answer.text) if u.startswith("/docs/assets/")]
    assert len(assets) >= 2, answer.text  # the script and the stylesheet or icon
    for url in assets:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        kind = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
        assert asset.headers["content-type"].startswith(kind[Path(url).suffix]), url
        assert len(asset.content) > 500, url
    assert "validatorUrl" not in answer.text or '"validatorUrl": null' in answer.text
    # Only the vendored files are reachable there, not the rest of the package.
    for other in ("webchat.js", "VENDORED.md", "..%2Fwebchat.js", "redoc.LICENSE"):
        refused = await client.get(f"/docs/assets/{other}")
        assert refused.status_code == 404, other
        assert refused.json()["code"] == "not_found"


# The order the examples are tried in: a body for a path with an id needs the thing the
# examples before it created.
ORDER = [
    ("POST", "/api/v1/templates"),
    ("PUT", "/api/v1/templates/{template_id}"),
    ("POST", "/api/v1/templates/{template_id}/preview"),
    ("POST", "/api/v1/templates/preview"),
    ("POST", "/api/v1/messages"),
    ("DELETE", "/api/v1/messages"),
    ("POST", "/api/v1/tasks"),
    ("PUT", "/api/v1/tasks/{task_id}"),
    ("POST", "/api/v1/tasks/{task_id}"),
    ("POST", "/api/v1/messages/bulk"),
    ("PATCH", "/api/v1/project"),
    ("PUT", "/api/v1/bandwidth/{company_id}"),
    ("POST", "/api/v1/bots"),
    ("PUT", "/api/v1/bots/{bot_id}"),
    ("PATCH", "/api/v1/bots/{bot_id}"),
    ("POST", "/api/v1/bots/{bot_id}"),
    ("POST", "/api/v1/bots/{bot_id}/webchat/visitors"),
    ("POST", "/api/v1/bots/{bot_id}/conversations/{conversation_id}/messages"),
    ("POST", "/api/v1/suppressions"),
    ("POST", "/api/v1/senders"),
    ("PATCH", "/api/v1/senders/{sender_id}"),
    ("POST", "/webhooks/twilio/status/{attempt_id}"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
]
CREATES = {
    ("POST", "/api/v1/templates"): "template_id",
    ("POST", "/api/v1/tasks"): "task_id",
    ("POST", "/api/v1/bots"): "bot_id",
    ("POST", "/api/v1/senders"): "sender_id",
}
# Those that need something no request body can make: a person who texted the bot, a send
# attempt signed by Twilio, a user (made by `herald users create`) and their refresh token.
# Their example is still answered as the document says.
NEEDS_MORE = {
    ("POST", "/api/v1/auth/login"): 401,
    ("POST", "/api/v1/auth/refresh"): 401,
    ("POST", "/api/v1/bots/{bot_id}/conversations/{conversation_id}/messages"): 404,
    ("POST", "/webhooks/twilio/status/{attempt_id}"): 403,
}


async def test_every_request_body_has_an_example_herald_accepts(
    client: httpx.AsyncClient, herald: RunningHerald
) -> None:
    document = (await client.get("/openapi.json")).json()
    with_bodies = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if "requestBody" in operation
    }
    assert set(ORDER) == set(with_bodies)  # a new route with a body gets a tried example
    ids = {
        "company_id": herald.project.project_id,
        "conversation_id": str(uuid.uuid4()),
        "attempt_id": str(uuid.uuid4()),
    }
    for method, path in ORDER:
        operation = with_bodies[(method, path)]
        content = operation["requestBody"]["content"]
        media_type, media = next(iter(content.items()))
        example = media["example"]
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        answer = await _send(client, method, url, media_type, example)
        where = f"{method} {path}: {answer.status_code} {answer.text[:300]}"
        expected = NEEDS_MORE.get((method, path))
        if expected is None:
            assert 200 <= answer.status_code < 300, where
        else:
            assert answer.status_code == expected, where
        assert str(answer.status_code) in operation["responses"], where
        if (method, path) in CREATES:
            ids[CREATES[(method, path)]] = answer.json()["id"]


async def _send(
    client: httpx.AsyncClient, method: str, url: str, media_type: str, example: Any
) -> httpx.Response:
    if media_type == "application/json":
        return await client.request(method, url, json=example)
    if media_type == "multipart/form-data":
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        data: dict[str, str] = {}
        for name, value in example.items():
            if name == "messages":
                for i, text in enumerate(value if isinstance(value, list) else [value]):
                    files.append((name, (f"rows{i}.csv", text.encode(), "text/csv")))
            else:
                data[name] = value
        return await client.request(method, url, files=files, data=data)
    return await client.request(method, url, data=example)


def _readme_curl_body() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Sending: `POST /api/v1/messages`") :]
    block = section[section.index("```bash\n") : section.index("\n```\n")]
    return block[block.index("<<EOF\n") + len("<<EOF\n") : block.rindex("\nEOF")]


async def test_the_readmes_curl_example_schedules_a_message_with_a_local_callback(
    client: httpx.AsyncClient,
) -> None:
    body = _readme_curl_body()
    assert '"sendAt": "$SEND_AT"' in body
    assert "http://127.0.0.1:" in body  # a callback URL the reader can run themselves
    send_at = datetime.now(UTC) + timedelta(minutes=10)
    sent = await client.post(
        "/api/v1/messages",
        content=body.replace("$SEND_AT", send_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        headers={"Content-Type": "application/json", "Idempotency-Key": "order-77-shipped"},
    )
    assert sent.status_code == 201, sent.text
    message = (await client.get(f"/api/v1/messages/{sent.json()[0]['id']}")).json()
    assert message["status"] == "scheduled", message


def test_make_run_installs_the_runtime_only_and_make_test_the_dev_extras() -> None:
    def planned(*args: str) -> str:
        # -n prints the commands without running them; -B as if nothing were installed yet.
        return subprocess.run(
            ["make", "-n", "-B", "-C", str(ROOT), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    run = planned("run", "PORT=8001")
    assert "pip install --quiet -e .\n" in run and "[dev]" not in run
    assert "herald serve --host 127.0.0.1 --port 8001" in run
    assert "HERALD_ALLOWED_PRIVATE_HOSTS='127.0.0.1,::1,localhost'" in run
    assert "pip install --quiet -e '.[dev]'" in planned("test")
