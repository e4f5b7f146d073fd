"""Users, web sessions and TWIN IAM tokens on both databases (services, no HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select

from herald.bootstrap import Herald, build
from herald.config import Settings
from herald.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from herald.services import iam, users, web_sessions
from herald.services.projects import create_project
from herald.store.users import SigningKey, User, WebSession

PASSWORD = "correct horse battery"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class World:
    herald: Herald
    project_id: str


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    herald = build(settings)
    async with herald.sessions() as session, session.begin():
        project = await create_project(session, herald.vault, "acme")
    try:
        yield World(herald, project.project_id)
    finally:
        await herald.aclose()


async def make_user(world: World, email: str, role: str = "operator") -> User:
    async with world.herald.sessions() as session, session.begin():
        return await users.create_user(session, world.project_id, email, role, PASSWORD)


def test_roles_and_what_they_may_do() -> None:
    assert users.can("viewer", "view") and not users.can("viewer", "send")
    for action in ("view", "send", "cancel", "templates", "tasks"):
        assert users.can("operator", action)
    for action in ("senders", "keys", "users"):
        assert not users.can("operator", action)
        assert users.can("admin", action)
    assert not users.can("nobody", "view")
    assert [r.value for r in users.Role] == ["admin", "operator", "viewer"]


async def test_create_user_checks_and_normalises(world: World) -> None:
    user = await make_user(world, "  Ann@Example.COM ", "admin")
    assert user.email == "ann@example.com" and user.role == "admin"
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    async with world.herald.sessions() as session, session.begin():
        with pytest.raises(Conflict) as taken:
            await users.create_user(session, world.project_id, "ANN@example.com", "viewer")
        assert taken.value.code == "user_exists"
        with pytest.raises(ValidationFailed) as role:
            await users.create_user(session, world.project_id, "b@example.com", "boss")
        assert role.value.code == "invalid_role"
        with pytest.raises(ValidationFailed) as email:
            await users.create_user(session, world.project_id, "not an address", "viewer")
        assert email.value.code == "invalid_email"
        with pytest.raises(ValidationFailed) as short:
            await users.create_user(session, world.project_id, "c@example.com", "viewer", "short")
        assert short.value.code == "password_too_short"
        with pytest.raises(NotFound):
            await users.create_user(session, "no-such-project", "d@example.com", "viewer")


async def test_authenticate_gives_one_answer_for_every_failure(world: World) -> None:
    await make_user(world, "ann@example.com")
    async with world.herald.sessions() as session, session.begin():
        found = await users.authenticate(session, "ANN@example.com ", PASSWORD)
        assert found.email == "ann@example.com"
        refusals = []
        for email, password in [
            ("ann@example.com", "wrong password!"),
            ("nobody@example.com", PASSWORD),
            ("not an address", PASSWORD),
        ]:
            with pytest.raises(Unauthorized) as e:
                await users.authenticate(session, email, password)
            refusals.append((e.value.code, e.value.message))
        await users.disable(session, found)
        with pytest.raises(Unauthorized) as disabled:
            await users.authenticate(session, "ann@example.com", PASSWORD)
        refusals.append((disabled.value.code, disabled.value.message))
    assert len(set(refusals)) == 1 and refusals[0][0] == "invalid_credentials"


async def test_passwords_and_languages(world: World) -> None:
    user = await make_user(world, "ann@example.com")
    async with world.herald.sessions() as session, session.begin():
        user = await session.get(User, user.id)
        assert user is not None
        with pytest.raises(ValidationFailed):
            await users.set_password(session, user, "123456789")
        await users.set_password(session, user, "a new password")
        await users.set_language(session, user, "ru")
        with pytest.raises(ValidationFailed) as language:
            await users.set_language(session, user, "de")
        assert language.value.code == "invalid_language"
    async with world.herald.sessions() as session, session.begin():
        again = await users.authenticate(session, "ann@example.com", "a new password")
        assert again.language == "ru"
        await users.set_language(session, again, None)
        with pytest.raises(Unauthorized):
            await users.authenticate(session, "ann@example.com", PASSWORD)


async def test_sign_in_links_work_once_and_expire(world: World) -> None:
    async with world.herald.sessions() as session, session.begin():
        token = await users.invite(session, world.project_id, "Bob@example.com", "viewer", now=T0)
    async with world.herald.sessions() as session, session.begin():
        user = await users.redeem_sign_in_link(session, token, now=T0 + timedelta(hours=1))
        assert user.email == "bob@example.com" and user.password_hash is None
        with pytest.raises(Unauthorized) as used:
            await users.redeem_sign_in_link(session, token, now=T0 + timedelta(hours=2))
        assert used.value.code == "sign_in_link_expired"
        with pytest.raises(NotFound):
            await users.redeem_sign_in_link(session, "no-such-token")
        late = await users.sign_in_link(session, user, ttl=timedelta(minutes=5), now=T0)
        with pytest.raises(Unauthorized):
            await users.redeem_sign_in_link(session, late, now=T0 + timedelta(minutes=5))
        # A user invited by link cannot sign in with a password before setting one.
        with pytest.raises(Unauthorized):
            await users.authenticate(session, "bob@example.com", "")


async def test_web_sessions(world: World) -> None:
    user = await make_user(world, "ann@example.com")
    async with world.herald.sessions() as session, session.begin():
        first = await web_sessions.start(session, user, user_agent="UA 1", ip="127.0.0.1", now=T0)
        second = await web_sessions.start(session, user, user_agent=None, ip=None, now=T0)
        stored = await session.scalars(select(WebSession.token_hash))
        assert first not in set(stored)  # only hashes are kept
    async with world.herald.sessions() as session, session.begin():
        found = await web_sessions.current(session, first, now=T0 + timedelta(seconds=30))
        assert found is not None and found[0].id == user.id
        assert found[1].last_seen_at == T0  # touched at most once a minute
        found = await web_sessions.current(session, first, now=T0 + timedelta(minutes=2))
        assert found is not None and found[1].last_seen_at == T0 + timedelta(minutes=2)
        assert await web_sessions.current(session, "unknown", now=T0) is None
        assert await web_sessions.current(session, first, now=T0 + web_sessions.SESSION_TTL) is None
        live = await web_sessions.list_for(session, user.id, now=T0 + timedelta(minutes=3))
        assert len(live) == 2 and live[0].user_agent == "UA 1"
        await web_sessions.end(session, first)
        assert await web_sessions.current(session, first, now=T0 + timedelta(minutes=3)) is None
        assert await web_sessions.current(session, second, now=T0 + timedelta(minutes=3))
        await web_sessions.end_all(session, user.id)
        assert await web_sessions.current(session, second, now=T0 + timedelta(minutes=3)) is None
        assert await web_sessions.list_for(session, user.id) == []


async def test_a_disabled_user_has_no_session(world: World) -> None:
    user = await make_user(world, "ann@example.com")
    async with world.herald.sessions() as session, session.begin():
        token = await web_sessions.start(session, user, user_agent=None, ip=None, now=T0)
        found = await session.get(User, user.id)
        assert found is not None
        await users.disable(session, found, now=T0)
        assert await web_sessions.current(session, token, now=T0) is None


async def login(world: World, ttl: int = 3600, now: datetime = T0) -> iam.TokenPair:
    async with world.herald.sessions() as session, session.begin():
        return await iam.login(
            session, world.herald.vault, "ann@example.com", PASSWORD, ttl=ttl, now=now
        )


async def caller(world: World, token: str, now: datetime) -> iam.Caller:
    async with world.herald.sessions() as session, session.begin():
        return await iam.caller(session, world.herald.vault, token, now=now)


async def refresh(world: World, token: str, now: datetime, ttl: int = 60) -> iam.TokenPair:
    async with world.herald.sessions() as session:
        try:
            return await iam.refresh(session, world.herald.vault, token, ttl=ttl, now=now)
        finally:
            await session.commit()  # as the route does: a refusal's revocation stays


async def test_iam_tokens_expire_only_after_exp_and_the_skew(world: World) -> None:
    user = await make_user(world, "ann@example.com", "viewer")
    pair = await login(world, ttl=120)
    claims = jwt.decode(pair.token, options={"verify_signature": False})
    assert claims["exp"] == int(T0.timestamp()) + 120 and claims["sub"] == user.id
    assert pair.token.count(".") == 2
    found = await caller(world, pair.token, T0 + timedelta(seconds=149))
    assert (found.project_id, found.role, found.user_id) == (world.project_id, "viewer", user.id)
    with pytest.raises(Unauthorized) as expired:
        await caller(world, pair.token, T0 + timedelta(seconds=150))
    assert expired.value.message == "Token is expired."
    # Tampered: any other failure has another sentence.
    header, payload, signature = pair.token.split(".")
    forged = jwt.encode(
        {**claims, "exp": claims["exp"] + 10_000},
        "a guessed key, 32 bytes or more!",
        algorithm="HS256",
    )
    for bad in (forged, f"{header}.{payload}.{signature[:-2]}AA", "a.b.c"):
        with pytest.raises(Unauthorized) as invalid:
            await caller(world, bad, T0)
        assert invalid.value.code == "invalid_token"
        assert invalid.value.message != "Token is expired."


async def test_the_ttl_is_checked() -> None:
    assert iam.checked_ttl(None) == 3600
    assert iam.checked_ttl(1) == 1 and iam.checked_ttl(30 * 24 * 3600) == 30 * 24 * 3600
    for bad in (0, -5, 30 * 24 * 3600 + 1, True, "60", 1.5):
        with pytest.raises(ValidationFailed) as e:
            iam.checked_ttl(bad)
        assert e.value.code == "invalid_ttl"


async def test_refresh_tokens_rotate_and_a_replay_ends_the_session(world: World) -> None:
    await make_user(world, "ann@example.com")
    first = await login(world, ttl=10)
    later = T0 + timedelta(hours=1)
    second = await refresh(world, first.refresh_token, later, ttl=600)
    claims = jwt.decode(second.token, options={"verify_signature": False})
    assert claims["exp"] == int(later.timestamp()) + 600
    assert await caller(world, second.token, later)
    with pytest.raises(Unauthorized) as replay:
        await refresh(world, first.refresh_token, later)
    assert replay.value.code == "invalid_refresh_token"
    # Two parties held that token: the whole chain is revoked, the newest pair too.
    with pytest.raises(Unauthorized) as revoked:
        await caller(world, second.token, later)
    assert revoked.value.code == "token_revoked"
    with pytest.raises(Unauthorized):
        await refresh(world, second.refresh_token, later)
    with pytest.raises(Unauthorized):
        await refresh(world, "never-issued", later)


async def test_refresh_tokens_expire(world: World) -> None:
    await make_user(world, "ann@example.com")
    pair = await login(world)
    with pytest.raises(Unauthorized):
        await refresh(world, pair.refresh_token, T0 + iam.REFRESH_TTL)


async def test_sign_out_everywhere_revokes_iam_tokens(world: World) -> None:
    user = await make_user(world, "ann@example.com")
    pair = await login(world)
    async with world.herald.sessions() as session, session.begin():
        await web_sessions.end_all(session, user.id, now=T0)
    with pytest.raises(Unauthorized) as e:
        await caller(world, pair.token, T0)
    assert e.value.code == "token_revoked"
    with pytest.raises(Unauthorized):
        await refresh(world, pair.refresh_token, T0)


async def test_the_signing_key_is_sealed_and_shared(world: World, settings: Settings) -> None:
    await make_user(world, "ann@example.com")
    pair = await login(world)
    async with world.herald.sessions() as session:
        stored = (await session.scalars(select(SigningKey))).one()
    assert stored.purpose == "iam"
    # Another process with the same key reads the same signing key.
    other = build(settings)
    try:
        async with other.sessions() as session:
            found = await iam.caller(session, other.vault, pair.token, now=T0)
        assert found.project_id == world.project_id
    finally:
        await other.aclose()
