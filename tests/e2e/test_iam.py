"""TWIN's IAM over real sockets: auth/login and auth/refresh, the token as a bearer on the
API, expiry with clock skew, rotation, revocation, roles, and the failed-sign-in brake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from herald.clock import ManualClock
from herald.config import Settings
from herald.services import users, web_sessions
from herald.store.users import User
from tests.e2e.rawhttp import exchange, head
from tests.servers import RunningHerald, make_settings, running_herald

PASSWORD = "correct horse battery"
BURST = 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def herald(settings: Settings, clock: ManualClock) -> AsyncIterator[RunningHerald]:
    throttled = settings.model_copy(
        update={"failed_auth_burst": BURST, "failed_auth_per_minute": 1.0}
    )
    async with running_herald(throttled, run_workers=False, clock=clock) as running:
        for email, role in [
            ("ann@example.com", "operator"),
            ("vic@example.com", "viewer"),
            ("adm@example.com", "admin"),
        ]:
            async with running.herald.sessions() as session, session.begin():
                await users.create_user(session, running.project.project_id, email, role, PASSWORD)
        yield running


@pytest.fixture
async def anonymous(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=herald.url, timeout=30) as c:
        yield c


def twin_login(email: str, ttl: int | None = 3600, password: str = PASSWORD) -> dict[str, Any]:
    """The body TWIN's SDK sends: every key present, companyId null, extra []."""
    return {"email": email, "password": password, "ttl": ttl, "companyId": None, "extra": []}


async def login(anonymous: httpx.AsyncClient, email: str, ttl: int = 3600) -> dict[str, str]:
    answer = await anonymous.post("/api/v1/auth/login", json=twin_login(email, ttl))
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    assert set(body) == {"token", "refreshToken"}
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SMS = {
    "messages": [{"destinations": [{"phone": "+14155552671"}], "channels": {"sms": {"text": "hi"}}}]
}


async def test_login_gives_a_jwt_that_opens_the_users_project(
    herald: RunningHerald, anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    pair = await login(anonymous, "Ann@Example.com", ttl=86400)
    assert len(pair["token"].split(".")) == 3
    claims = jwt.decode(pair["token"], options={"verify_signature": False})
    assert claims["exp"] == int(clock.now().timestamp()) + 86400
    assert jwt.get_unverified_header(pair["token"])["alg"] == "HS256"

    sent = await anonymous.post("/api/v1/messages", json=SMS, headers=bearer(pair["token"]))
    assert sent.status_code in (200, 201), sent.text
    listed = await anonymous.get("/api/v1/messages", headers=bearer(pair["token"]))
    assert listed.status_code == 200
    assert listed.json()["count"] == 1
    # The same project the API key opens.
    async with herald.client() as by_key:
        assert (await by_key.get("/api/v1/messages")).json()["count"] == 1
    # Default ttl: an hour.
    default = await anonymous.post("/api/v1/auth/login", json=twin_login("ann@example.com", None))
    claims = jwt.decode(default.json()["token"], options={"verify_signature": False})
    assert claims["exp"] == int(clock.now().timestamp()) + 3600


async def test_bad_logins(anonymous: httpx.AsyncClient) -> None:
    wrong = await anonymous.post(
        "/api/v1/auth/login", json=twin_login("ann@example.com", password="not the password")
    )
    unknown = await anonymous.post("/api/v1/auth/login", json=twin_login("who@example.com"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"
    for ttl in (0, 30 * 24 * 3600 + 1, -1):
        answer = await anonymous.post("/api/v1/auth/login", json=twin_login("ann@example.com", ttl))
        assert answer.status_code == 422
        assert answer.json()["code"] == "invalid_ttl", answer.text
    longest = await anonymous.post(
        "/api/v1/auth/login", json=twin_login("ann@example.com", 30 * 24 * 3600)
    )
    assert longest.status_code == 200


async def test_expiry_waits_for_exp_and_the_clock_skew(
    anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    pair = await login(anonymous, "ann@example.com", ttl=60)
    headers = bearer(pair["token"])
    clock.advance(60 + 29)  # past exp by the client's clock, inside the skew: still works
    assert (await anonymous.get("/api/v1/messages", headers=headers)).status_code == 200
    clock.advance(1)
    expired = await anonymous.get("/api/v1/messages", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["error"] == "Token is expired."
    assert expired.json()["code"] == "token_expired"
    # Refused before a byte of the body is read, like a wrong API key.
    large = {**headers, "Content-Length": str(50 * 1024 * 1024)}
    answer = await exchange(str(anonymous.base_url), head("POST", "/api/v1/messages", large))
    assert answer.status == 401

    # Any other bad token says something else.
    forged = jwt.encode({"sub": "x", "sid": "y", "exp": 9_999_999_999}, "k" * 32, algorithm="HS256")
    for token in (forged, pair["token"][:-3] + "abc", "not.a.jwt"):
        refused = await anonymous.get("/api/v1/messages", headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["error"] != "Token is expired."
        assert refused.json()["code"] == "invalid_token"


async def test_refresh_rotates_and_takes_the_expired_token_without_bearer(
    anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    pair = await login(anonymous, "ann@example.com", ttl=5)
    clock.advance(3600)
    renewed = await anonymous.post(
        "/api/v1/auth/refresh",
        json={"refreshToken": pair["refreshToken"], "ttl": 120},
        headers={"Authorization": pair["token"]},  # as the SDK sends it: expired, no Bearer
    )
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert set(fresh) == {"token", "refreshToken"}
    claims = jwt.decode(fresh["token"], options={"verify_signature": False})
    assert claims["exp"] == int(clock.now().timestamp()) + 120
    assert (
        await anonymous.get("/api/v1/messages", headers=bearer(fresh["token"]))
    ).status_code == 200
    # No header at all works too, and so does a garbage one.
    again = await anonymous.post(
        "/api/v1/auth/refresh",
        json={"refreshToken": fresh["refreshToken"], "ttl": 120},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert again.status_code == 200
    newest = again.json()

    # The spent token is refused; presenting it ends the whole sign-in (it was copied).
    replay = await anonymous.post(
        "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"], "ttl": 120}
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_refresh_token"
    revoked = await anonymous.get("/api/v1/messages", headers=bearer(newest["token"]))
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "token_revoked"
    bad_ttl = await anonymous.post(
        "/api/v1/auth/refresh", json={"refreshToken": newest["refreshToken"], "ttl": 0}
    )
    assert bad_ttl.status_code == 422


async def test_sign_out_everywhere_and_disabling_revoke_tokens(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    pair = await login(anonymous, "ann@example.com")
    async with herald.herald.sessions() as session, session.begin():
        user = await users.find_user(session, "ann@example.com")
        await web_sessions.end_all(session, user.id)
    answer = await anonymous.get("/api/v1/messages", headers=bearer(pair["token"]))
    assert answer.status_code == 401 and answer.json()["code"] == "token_revoked"
    refresh = await anonymous.post(
        "/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"], "ttl": 60}
    )
    assert refresh.status_code == 401

    second = await login(anonymous, "ann@example.com")
    async with herald.herald.sessions() as session, session.begin():
        found = await session.get(User, user.id)
        assert found is not None
        await users.disable(session, found)
    answer = await anonymous.get("/api/v1/messages", headers=bearer(second["token"]))
    assert answer.status_code == 401
    relogin = await anonymous.post("/api/v1/auth/login", json=twin_login("ann@example.com"))
    assert relogin.status_code == 401


async def test_roles(anonymous: httpx.AsyncClient) -> None:
    viewer = bearer((await login(anonymous, "vic@example.com"))["token"])
    for path in ("/api/v1/messages", "/api/v1/templates", "/api/v1/tasks", "/api/v1/project"):
        assert (await anonymous.get(path, headers=viewer)).status_code == 200, path
    refused = await anonymous.post("/api/v1/messages", json=SMS, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["code"] == "read_only_role"
    assert "only read" in refused.json()["error"]
    cancel = await anonymous.request(
        "DELETE",
        "/api/v1/messages",
        json={"id": None, "bulkId": None, "groupId": None, "flowId": None},
        headers=viewer,
    )
    assert cancel.status_code == 403

    operator = bearer((await login(anonymous, "ann@example.com"))["token"])
    template = await anonymous.post(
        "/api/v1/templates",
        json={"name": "hello", "channels": {"sms": {"text": "Hi"}}},
        headers=operator,
    )
    assert template.status_code in (200, 201), template.text
    settings = await anonymous.patch("/api/v1/project", json={"rateLimit": 5}, headers=operator)
    assert settings.status_code == 403
    assert settings.json()["code"] == "role_not_allowed"
    admin = bearer((await login(anonymous, "adm@example.com"))["token"])
    settings = await anonymous.patch("/api/v1/project", json={"rateLimit": 5}, headers=admin)
    assert settings.status_code == 200, settings.text


async def test_template_versions_say_who_saved_them(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    operator = bearer((await login(anonymous, "ann@example.com"))["token"])
    made = await anonymous.post(
        "/api/v1/templates",
        json={"name": "who", "channels": {"sms": {"text": "Hi"}}},
        headers=operator,
    )
    assert made.status_code == 201, made.text
    template_id = made.json()["id"]
    async with herald.client() as keyed:  # an API key: no person behind the save
        edited = await keyed.put(
            f"/api/v1/templates/{template_id}", json={"channels": {"sms": {"text": "Hello"}}}
        )
        assert edited.status_code == 200, edited.text
    versions = await anonymous.get(f"/api/v1/templates/{template_id}/versions", headers=operator)
    assert versions.status_code == 200, versions.text
    assert [(v["version"], v["createdBy"]) for v in versions.json()["items"]] == [
        (2, None),
        (1, "ann@example.com"),
    ]


async def test_failed_logins_are_throttled(
    herald: RunningHerald, anonymous: httpx.AsyncClient
) -> None:
    ok = await anonymous.post("/api/v1/auth/login", json=twin_login("ann@example.com"))
    assert ok.status_code == 200  # a success spends nothing
    for _ in range(BURST):
        wrong = await anonymous.post(
            "/api/v1/auth/login", json=twin_login("ann@example.com", password="guess guess")
        )
        assert wrong.status_code == 401
    throttled = await anonymous.post("/api/v1/auth/login", json=twin_login("ann@example.com"))
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "too_many_failed_logins"
    assert int(throttled.headers["Retry-After"]) >= 1
    refresh = await anonymous.post("/api/v1/auth/refresh", json={"refreshToken": "x", "ttl": 60})
    assert refresh.status_code == 429
    # API keys are a separate brake, and keep working as before.
    async with herald.client() as by_key:
        assert (await by_key.get("/api/v1/messages")).status_code == 200
    async with herald.client("hrld_guess") as guessing:
        assert (await guessing.get("/api/v1/messages")).json()["code"] == "invalid_api_key"


def herald_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "herald"), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_makes_users_who_sign_in(tmp_path: Path, secret_key: str) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {
        "HERALD_DATABASE_URL": database,
        "HERALD_SECRET_KEY": secret_key,
        "HERALD_PUBLIC_URL": "https://herald.example.com/",
    }
    project = herald_cli(["projects", "create", "acme", "--json"], env, tmp_path)
    assert project.returncode == 0, project.stderr
    project_id = json.loads(project.stdout)["projectId"]

    admin = herald_cli(
        ["users", "create", "Ann@Example.com", "--project", "acme", "--role", "admin"],
        env,
        tmp_path,
    )
    assert admin.returncode == 0, admin.stderr
    link = admin.stdout.strip().splitlines()[-1]
    assert link.startswith("https://herald.example.com/sign-in/link/")
    scripted = herald_cli(
        [
            "users",
            "create",
            "bot@example.com",
            "-p",
            project_id,
            "--role",
            "viewer",
            "--password",
            PASSWORD,
            "--json",
        ],
        env,
        tmp_path,
    )
    assert scripted.returncode == 0, scripted.stderr
    assert json.loads(scripted.stdout)["signInUrl"] is None
    again = herald_cli(["users", "create", "ann@example.com", "-p", "acme"], env, tmp_path)
    assert again.returncode == 1 and "already has an account" in again.stderr
    unknown = herald_cli(["users", "create", "x@example.com", "-p", "nope"], env, tmp_path)
    assert unknown.returncode == 1 and "no project named 'nope'" in unknown.stderr
    listed = herald_cli(["users", "list", "--project", "acme"], env, tmp_path)
    assert "ann@example.com" in listed.stdout and "bot@example.com" in listed.stdout
    assert "--password" in herald_cli(["users", "create", "--help"], env, tmp_path).stdout

    # The link signs Ann in once (the cabinet's page spends it through this service).
    settings = make_settings(database, secret_key)
    async with running_herald(settings, run_workers=False) as herald:
        async with herald.herald.sessions() as session, session.begin():
            user = await users.redeem_sign_in_link(session, link.rsplit("/", 1)[1])
            assert user.email == "ann@example.com" and user.role == "admin"
        async with httpx.AsyncClient(base_url=herald.url) as anonymous:
            pair = await login(anonymous, "bot@example.com")
            assert (await anonymous.get("/api/v1/project", headers=bearer(pair["token"]))).json()[
                "id"
            ] == project_id
            disabled = herald_cli(["users", "disable", "bot@example.com"], env, tmp_path)
            assert disabled.returncode == 0, disabled.stderr
            gone = await anonymous.get("/api/v1/project", headers=bearer(pair["token"]))
            assert gone.status_code == 401
