"""TWIN's IAM: ``auth/login`` and ``auth/refresh`` hand out a JWT and a refresh token.

Both take no API key (api.early_auth lets them through): the e-mail and password, or the
refresh token, are the credentials. Failures are throttled per address like wrong API keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from herald.api.deps import HeraldDep, throttled_sign_in
from herald.api.responses import JSON_BODY, errors
from herald.errors import Unauthorized
from herald.schemas.messages import WireModel
from herald.schemas.out.base import OutModel
from herald.services import iam

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Ttl = Annotated[
    int | None,
    Field(
        strict=True,
        description=f"Seconds the token lives: 1 to {iam.MAX_TTL}; {iam.DEFAULT_TTL} if left out.",
    ),
]


class LoginIn(WireModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    ttl: Ttl = None
    # TWIN's SDK always sends these two; a Herald user belongs to one project, so they
    # choose nothing.
    company_id: Any = Field(default=None, alias="companyId")
    extra: Any = None


class RefreshIn(WireModel):
    refresh_token: str = Field(alias="refreshToken", max_length=200)
    ttl: Ttl = None


class TokenPairOut(OutModel):
    """A JWT for ``Authorization: Bearer`` and the one-time token that renews it."""

    token: str
    refresh_token: str


def _pair(pair: iam.TokenPair) -> dict[str, Any]:
    return {"token": pair.token, "refreshToken": pair.refresh_token}


@router.post(
    "/login",
    summary="Sign in (TWIN IAM)",
    response_model=TokenPairOut,
    responses=errors(401, 429, JSON_BODY),
)
async def login(payload: LoginIn, request: Request, herald: HeraldDep) -> dict[str, Any]:
    ttl = iam.checked_ttl(payload.ttl)

    async def attempt() -> iam.TokenPair:
        async with herald.sessions() as session, session.begin():
            return await iam.login(
                session,
                herald.vault,
                payload.email,
                payload.password,
                ttl=ttl,
                now=herald.clock.now(),
            )

    client = request.client.host if request.client else None
    return _pair(await throttled_sign_in(request.app, client, attempt))


@router.post(
    "/refresh",
    summary="Renew a token (TWIN IAM)",
    description="The refresh token works once; the answer holds the next one. The "
    "`Authorization` header TWIN's SDK sends here (its expired token) is ignored.",
    response_model=TokenPairOut,
    responses=errors(401, 429, JSON_BODY),
)
async def refresh(payload: RefreshIn, request: Request, herald: HeraldDep) -> dict[str, Any]:
    ttl = iam.checked_ttl(payload.ttl)

    async def attempt() -> iam.TokenPair:
        async with herald.sessions() as session:
            try:
                pair = await iam.refresh(
                    session, herald.vault, payload.refresh_token, ttl=ttl, now=herald.clock.now()
                )
            except Unauthorized:
                await session.commit()  # keeps what the refusal did: a replayed token's revocation
                raise
            await session.commit()
            return pair

    client = request.client.host if request.client else None
    return _pair(await throttled_sign_in(request.app, client, attempt))
