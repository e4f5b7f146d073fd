"""Short links on both databases: the redirect, click counting, expiry, the TWIN list."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from herald.config import Settings
from herald.errors import NotFound
from herald.services.link_clicks import Click, record_clicks, resolve_click
from herald.services.short_links import (
    PlannedLink,
    link_stats_for_messages,
    replace_codes,
    retention_of,
    save_short_links,
    short_link_base,
    shorten_text,
)
from herald.store.base import new_id
from herald.store.short_links import LinkClick, ShortLink
from tests.servers import RunningHerald, make_settings, running_herald

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Herald-test"


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings, run_workers=False) as running:
        yield running


@pytest.fixture
async def anonymous(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    """A recipient's phone: no API key, does not follow redirects."""
    async with httpx.AsyncClient(base_url=herald.url, headers={"User-Agent": UA}) as c:
        yield c


async def shorten_and_save(
    herald: RunningHerald,
    text: str,
    *,
    message_id: str | None = None,
    task_id: str | None = None,
    project_id: str | None = None,
    age: timedelta = timedelta(0),
    retention: timedelta | None = timedelta(days=90),
) -> tuple[str, list[PlannedLink]]:
    base = short_link_base(herald.herald.settings)
    short_text, links = shorten_text(text, base)
    async with herald.herald.sessions() as session, session.begin():
        renamed = await save_short_links(
            session,
            project_id or herald.project.project_id,
            message_id,
            task_id,
            links,
            now=herald.herald.clock.now() - age,
            retention=retention,
        )
    assert renamed == {}
    return short_text, links


async def test_redirect_counts_the_click(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    message_id = new_id()
    text, links = await shorten_and_save(
        herald, "Track: https://shop.example.com/o/42?x=1.", message_id=message_id
    )
    code = links[0].code
    assert text == f"Track: {herald.url}/{code}."

    response = await anonymous.get(f"/{code}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example.com/o/42?x=1"
    assert response.headers["cache-control"] == "no-store"
    await anonymous.get(f"/{code}", headers={"User-Agent": "second"})

    async with herald.herald.sessions() as session:
        link = await session.scalar(select(ShortLink).where(ShortLink.code == code))
        assert link is not None
        clicks = list(
            await session.scalars(
                select(LinkClick).where(LinkClick.link_id == link.id).order_by(LinkClick.id)
            )
        )
        stats = await link_stats_for_messages(session, [message_id, "no-links"])
    assert link.clicks == 2
    assert link.first_clicked_at is not None and link.last_clicked_at is not None
    assert link.first_clicked_at <= link.last_clicked_at
    assert [c.user_agent for c in clicks] == [UA, "second"]
    assert clicks[0].at == link.first_clicked_at
    assert stats == {message_id: {"clicks": 2, "firstClickedAt": link.first_clicked_at.isoformat()}}


async def test_head_does_not_count(herald: RunningHerald, anonymous: httpx.AsyncClient) -> None:
    _, links = await shorten_and_save(herald, "https://example.com/a")
    response = await anonymous.head(f"/{links[0].code}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/a"
    async with herald.herald.sessions() as session:
        link = await session.scalar(select(ShortLink).where(ShortLink.code == links[0].code))
    assert link is not None and link.clicks == 0


async def test_unknown_is_404_and_expired_is_410(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    response = await anonymous.get("/Zz9Zz9Zz")
    assert response.status_code == 404
    assert response.json()["code"] == "short_link_not_found"
    assert isinstance(response.json()["error"], str)

    _, links = await shorten_and_save(
        herald, "https://example.com/old", age=timedelta(days=2), retention=timedelta(days=1)
    )
    expired = await anonymous.get(f"/{links[0].code}")
    assert expired.status_code == 410
    assert expired.json() == {
        "error": f"The short link '{links[0].code}' has expired.",
        "code": "short_link_expired",
        "details": {},
    }
    assert (await anonymous.head(f"/{links[0].code}")).status_code == 410
    async with herald.herald.sessions() as session:
        link = await session.scalar(select(ShortLink).where(ShortLink.code == links[0].code))
    assert link is not None and link.clicks == 0  # an expired link counts nothing

    _, forever = await shorten_and_save(
        herald, "https://example.com/kept", age=timedelta(days=3650), retention=None
    )
    assert (await anonymous.get(f"/{forever[0].code}")).status_code == 302


async def test_other_routes_win_over_codes(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/openapi.json")).status_code == 200
    assert (await anonymous.get("/docs")).status_code == 200
    # Not code-shaped: the usual 404.
    assert (await anonymous.get("/abc")).json()["code"] == "not_found"
    assert (await anonymous.get("/abc-defgh")).json()["code"] == "not_found"


async def test_idn_target_is_sent_as_ascii(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    _, links = await shorten_and_save(herald, "Ссылка: https://пример.рф/путь?q=да")
    response = await anonymous.get(f"/{links[0].code}")
    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C?q=%D0%B4%D0%B0"
    )


async def test_codes_are_8_base62_and_unique(herald: RunningHerald) -> None:
    text = " ".join(f"https://example.com/item/{i}" for i in range(300))
    short_text, links = await shorten_and_save(herald, text, message_id=new_id())
    assert len(links) == 300
    async with herald.herald.sessions() as session:
        codes = list(await session.scalars(select(ShortLink.code)))
    assert len(codes) == len(set(codes)) == 300
    assert all(re.fullmatch(r"[0-9A-Za-z]{8}", code) for code in codes)
    assert set(re.findall(r"/([0-9A-Za-z]{8})\b", short_text)) == set(codes)


async def test_a_taken_code_is_replaced_before_the_insert(herald: RunningHerald) -> None:
    base = short_link_base(herald.herald.settings)
    project = herald.project.project_id
    now = herald.herald.clock.now()
    async with herald.herald.sessions() as session, session.begin():
        first = [PlannedLink("AAAAAAAA", "https://example.com/first")]
        assert (
            await save_short_links(session, project, None, None, first, now=now, retention=None)
            == {}
        )
    text = f"see {base}/AAAAAAAA and {base}/BBBBBBBB"
    clash = [
        PlannedLink("AAAAAAAA", "https://example.com/second"),
        PlannedLink("BBBBBBBB", "https://example.com/third"),
    ]
    async with herald.herald.sessions() as session, session.begin():
        renamed = await save_short_links(
            session, project, new_id(), None, clash, now=now, retention=None
        )
    assert list(renamed) == ["AAAAAAAA"]
    new_code = renamed["AAAAAAAA"]
    assert re.fullmatch(r"[0-9A-Za-z]{8}", new_code)
    fixed = replace_codes(text, base, renamed)
    assert fixed == f"see {base}/{new_code} and {base}/BBBBBBBB"
    async with herald.herald.sessions() as session:
        rows = {c: u for c, u in await session.execute(select(ShortLink.code, ShortLink.url))}
    assert rows == {
        "AAAAAAAA": "https://example.com/first",
        new_code: "https://example.com/second",
        "BBBBBBBB": "https://example.com/third",
    }


async def test_twin_list_with_counts_and_filters(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    m1, m2 = new_id(), new_id()
    _, l1 = await shorten_and_save(
        herald, "https://a.example/1 https://a.example/2", message_id=m1, task_id="task-7"
    )
    await shorten_and_save(herald, "https://b.example/1", message_id=m2)
    for _ in range(3):
        await anonymous.get(f"/{l1[0].code}")

    async with herald.client() as client:
        everything = (await client.get("/api/v1/shortLinks")).json()
        assert everything["count"] == 3
        item = next(i for i in everything["items"] if i["content"] == "https://a.example/1")
        assert item["messageId"] == m1 and item["taskId"] == "task-7"
        assert item["companyId"] == 0
        assert item["shortcut"] == f"{herald.url}/{l1[0].code}"
        assert item["clicks"] == 3
        assert item["firstVisitedAt"] and item["lastVisitedAt"]
        assert item["updatedAt"] == item["lastVisitedAt"]
        unclicked = next(i for i in everything["items"] if i["content"] == "https://b.example/1")
        assert unclicked["clicks"] == 0 and unclicked["firstVisitedAt"] is None
        assert unclicked["taskId"] is None and unclicked["updatedAt"] == unclicked["createdAt"]

        async def contents(query: str) -> set[str]:
            data = (await client.get(f"/api/v1/shortLinks?{query}")).json()
            assert data["count"] == len(data["items"])
            return {i["content"] for i in data["items"]}

        assert await contents(f"messageId={m2}") == {"https://b.example/1"}
        assert len(await contents(f"messageId={m1},{m2}")) == 3
        assert len(await contents(f"messageId={m1}&messageId={m2}")) == 3
        assert len(await contents(f"messageId%5B0%5D={m1}&messageId%5B1%5D={m2}")) == 3
        assert await contents("taskId=task-7") == {"https://a.example/1", "https://a.example/2"}
        assert await contents(f"taskId=task-7&messageId={m2}") == set()
        page = (await client.get("/api/v1/shortLinks", params={"limit": 1})).json()
        assert page["count"] == 3 and len(page["items"]) == 1

        other = await herald.new_project("other")
        await shorten_and_save(herald, "https://c.example/", project_id=other.project_id)
        async with herald.client(other.api_key) as theirs:
            data = (await theirs.get("/api/v1/shortLinks")).json()
        assert [i["content"] for i in data["items"]] == ["https://c.example/"]
        assert (await client.get("/api/v1/shortLinks")).json()["count"] == 3


async def test_short_link_settings(database_url: str, secret_key: str) -> None:
    settings = make_settings(
        database_url,
        secret_key,
        short_link_base_url="https://hrld.example/",
        short_link_retention_days=0,
    )
    assert short_link_base(settings) == "https://hrld.example"
    assert retention_of(settings) is None
    default = make_settings(database_url, secret_key)
    assert short_link_base(default) == "http://127.0.0.1:1"
    assert retention_of(default) == timedelta(days=90)
    async with running_herald(settings, run_workers=False) as herald, herald.client() as client:
        base = short_link_base(herald.herald.settings)
        text, _ = shorten_text("https://example.com/x", base)
        assert text.startswith("https://hrld.example/")
        template = await client.post(
            "/api/v1/templates",
            json={"name": "t", "channels": {"sms": {"text": "https://example.com/x"}}},
        )
        preview = await client.post(
            f"/api/v1/templates/{template.json()['id']}/preview", json={"useShortLinks": True}
        )
        assert preview.json()["channels"]["sms"]["textAfterShortening"] == (
            "https://hrld.example/XXXXXXXX"
        )


async def test_concurrent_clicks_share_transactions_and_all_count(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    _, links = await shorten_and_save(herald, "https://a.example/1 https://a.example/2")
    _, old = await shorten_and_save(
        herald, "https://a.example/old", age=timedelta(days=2), retention=timedelta(days=1)
    )
    paths = [f"/{links[i % 2].code}" for i in range(120)] + ["/Unknown1", f"/{old[0].code}"] * 5
    responses = await asyncio.gather(*(anonymous.get(path) for path in paths))
    assert [r.status_code for r in responses] == [302] * 120 + [404, 410] * 5
    async with herald.herald.sessions() as session:
        counters = {
            c: n for c, n in await session.execute(select(ShortLink.code, ShortLink.clicks))
        }
        rows = await session.scalar(select(func.count()).select_from(LinkClick))
    assert counters == {links[0].code: 60, links[1].code: 60, old[0].code: 0}
    assert rows == 120


async def test_record_clicks_answers_each_click(herald: RunningHerald) -> None:
    _, links = await shorten_and_save(herald, "https://a.example/x")
    now = herald.herald.clock.now()
    clicks = [Click(links[0].code, "a"), Click("Nope1234", None), Click(links[0].code, "b" * 900)]
    async with herald.herald.sessions() as session, session.begin():
        results = await record_clicks(session, clicks, now)
    assert results[0] == results[2] == "https://a.example/x"
    assert isinstance(results[1], NotFound) and results[1].code == "short_link_not_found"
    async with herald.herald.sessions() as session:
        agents = list(await session.scalars(select(LinkClick.user_agent).order_by(LinkClick.id)))
        link = await session.scalar(select(ShortLink).where(ShortLink.code == links[0].code))
    assert agents == ["a", "b" * 500]  # user agents are cut to the column's size
    assert link is not None and link.clicks == 2
    assert link.first_clicked_at == link.last_clicked_at == now
    # The single-click seam agrees.
    async with herald.herald.sessions() as session, session.begin():
        assert await resolve_click(session, links[0].code, None, now) == "https://a.example/x"
        with pytest.raises(NotFound):
            await resolve_click(session, "Nope1234", None, now)


async def test_twin_list_sorts_by_creation_and_returns_only_the_fields_asked(
    herald: RunningHerald,
) -> None:
    await shorten_and_save(herald, "https://old.example/", age=timedelta(hours=1))
    await shorten_and_save(herald, "https://new.example/")
    async with herald.client() as client:

        async def contents(query: str) -> list[str]:
            response = await client.get(f"/api/v1/shortLinks?{query}")
            assert response.status_code == 200, response.text
            assert response.json()["count"] == 2  # TWIN's SDK needs count and items
            return [i["content"] for i in response.json()["items"]]

        newest_first = ["https://new.example/", "https://old.example/"]
        assert await contents("sort=-createdAt") == newest_first
        assert await contents("sort=createdAt") == newest_first[::-1]
        only = await client.get("/api/v1/shortLinks?fields=content,clicks&sort=createdAt")
        assert only.json()["items"] == [
            {"content": "https://old.example/", "clicks": 0},
            {"content": "https://new.example/", "clicks": 0},
        ]
        # A link of no message still leaves messageId out rather than sending null.
        assert "messageId" not in (await client.get("/api/v1/shortLinks")).json()["items"][0]
        assert (await client.get("/api/v1/shortLinks?fields=messageId")).json()["items"] == [{}, {}]
        bad = await client.get("/api/v1/shortLinks", params={"sort": "-status"})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_sort"
        assert bad.json()["details"]["allowed"] == ["createdAt", "-createdAt"]
        bad = await client.get("/api/v1/shortLinks", params={"fields": "colour"})
        assert bad.status_code == 422 and bad.json()["code"] == "unknown_field"
