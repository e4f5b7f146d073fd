"""Request dependencies: the shared Herald graph and the calling project.

A caller is an API key (the project's) or a user's TWIN IAM token (a JWT from
``auth/login``, acting for the user's project within the user's role).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from starlette.applications import Starlette

from herald.api.throttle import FailureThrottle, address_key
from herald.bootstrap import Herald
from herald.config import Settings
from herald.errors import Forbidden, TooManyRequests, Unauthorized
from herald.services import iam
from herald.services.projects import authenticate, hash_key, key_owners
from herald.services.users import can


async def get_herald(request: Request) -> Herald:
    # async on purpose: FastAPI runs plain-def dependencies in a worker thread, a thread hop
    # on every request.
    herald: Herald = request.app.state.herald
    return herald


HeraldDep = Annotated[Herald, Depends(get_herald)]
T = TypeVar("T")

# Where the API key check ahead of FastAPI (api.early_auth) leaves the project it found.
PROJECT_SCOPE_KEY = "herald.project_id"
# ... and, when a user's IAM token opened it, who the user is (an iam.Caller).
CALLER_SCOPE_KEY = "herald.caller"
# Checked keys remembered at most; only valid keys are, so this is rarely reached.
MAX_REMEMBERED_KEYS = 10_000
# While an address may not risk another failed look-up, a key it sends is checked against
# a list of every project's key, read again at most this often: a valid key still opens
# its project (a new project's key at most this late), and a flood of wrong keys costs one
# query per interval, not one each.
KEY_LIST_MAX_AGE = 5.0


def bearer_key(authorization: str | None) -> str:
    """The API key of an ``Authorization: Bearer <apiKey>`` header."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "Send your API key as 'Authorization: Bearer <apiKey>'.", code="missing_api_key"
        )
    return authorization[7:].strip()


class ApiKeys:
    """The one place API keys are checked: a key seen valid lately is trusted from memory;
    an unknown one is looked up in the database while the caller's address has failures to
    spare (api.throttle); past that, the address gets 429 unless its key is a valid one."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = settings.api_key_cache_seconds
        self.failures = FailureThrottle(settings.failed_auth_burst, settings.failed_auth_per_minute)
        self._clock = clock
        # sha256 of the key -> (project id, when it was found): keys themselves are not kept.
        self._checked: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._owners: dict[str, str] = {}
        self._owners_at = -math.inf
        self._owners_lock = asyncio.Lock()

    async def project_of(
        self, herald: Herald, authorization: str | None, client: str | None
    ) -> str:
        """The project the request's API key opens; ``client`` is the caller's address."""
        key = bearer_key(authorization)
        digest = hash_key(key)
        now = self._clock()
        checked = self._checked.get(digest)
        if checked is not None and now - checked[1] < self.ttl:
            self._checked.move_to_end(digest)
            return checked[0]
        address = address_key(client)
        wait = self.failures.take(address, now)
        if wait is None:
            try:
                async with herald.sessions() as session:
                    project = (await authenticate(session, key)).id
            except Unauthorized:
                raise  # the attempt stays spent
            except BaseException:
                self.failures.give_back(address, self._clock())
                raise
            self.failures.give_back(address, self._clock())
        else:
            found = await self._owner(herald, digest, now)
            if found is None:
                raise TooManyRequests(
                    f"Too many wrong API keys came from your address; try again in {wait} "
                    "seconds, with the key printed by 'herald projects create'.",
                    retry_after=wait,
                    code="too_many_failed_logins",
                )
            project = found
        if self.ttl > 0:
            self._checked[digest] = (project, now)
            self._checked.move_to_end(digest)
            while len(self._checked) > MAX_REMEMBERED_KEYS:
                self._checked.popitem(last=False)
        return project

    async def _owner(self, herald: Herald, digest: str, now: float) -> str | None:
        max_age = min(KEY_LIST_MAX_AGE, self.ttl)
        if max_age <= 0:
            return None  # nothing may be trusted from memory: no list either
        async with self._owners_lock:
            # Requests queued behind a reload use its list rather than read another.
            if self._clock() - self._owners_at >= max_age:
                async with herald.sessions() as session:
                    self._owners = await key_owners(session)
                self._owners_at = self._clock()
        return self._owners.get(digest)


def api_keys(app: Starlette) -> ApiKeys:
    """The app's key checker, made on first use from its Herald graph's settings."""
    keys: ApiKeys | None = getattr(app.state, "api_keys", None)
    if keys is None:
        keys = app.state.api_keys = ApiKeys(app.state.herald.settings)
    return keys


def looks_like_jwt(token: str) -> bool:
    """An IAM token (header.payload.signature); API keys never hold a dot."""
    return token.count(".") == 2


# Writes under these first path segments need more than "send" (see services.users.can).
_WRITE_ACTIONS = {
    "senders": "senders",
    "project": "keys",
    "templates": "templates",
    "tasks": "tasks",
    "startedTasks": "tasks",
    "pausedTasks": "tasks",
}


def action_of(method: str, path: str) -> str:
    """The role permission an ``/api/v1`` request needs: reads need "view"; writes "send",
    or what their resource needs (a bot's settings are an admin's, its conversations not)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return "view"
    parts = path.removeprefix("/api/v1/").split("/")
    if parts[0] == "bots" and "conversations" not in parts:
        return "senders"
    if parts[0] == "messages" and method == "DELETE":
        return "cancel"
    return _WRITE_ACTIONS.get(parts[0], "send")


def refuse_role(caller: iam.Caller, action: str) -> None:
    """A 403 unless the caller's role may do ``action``."""
    if can(caller.role, action):
        return
    if action == "view" or caller.role != "viewer":
        raise Forbidden(
            f"Your role ({caller.role}) does not allow this request: it needs the "
            f"'{action}' permission. Ask an admin of your project.",
            code="role_not_allowed",
        )
    raise Forbidden(
        "Your role (viewer) may only read: GET requests only. Ask an admin of your project "
        "for the operator role.",
        code="read_only_role",
    )


async def token_caller(herald: Herald, token: str) -> iam.Caller:
    """Who a user's IAM token speaks for (401 when it is expired, revoked or not valid)."""
    async with herald.sessions() as session:
        caller = await iam.caller(session, herald.vault, token, now=herald.clock.now())
        await session.commit()  # the first check of a process may have made the signing key
    return caller


async def authorize(
    scope: MutableMapping[str, Any],
    herald: Herald,
    keys: ApiKeys,
    authorization: str | None,
    client: str | None,
) -> str:
    """The project an ``/api/v1`` request acts for, by API key or IAM token; a token's
    caller is left in ``scope`` and its role checked against the request's method and path."""
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        if looks_like_jwt(token):
            caller = await token_caller(herald, token)
            refuse_role(caller, action_of(str(scope["method"]), str(scope["path"])))
            scope[CALLER_SCOPE_KEY] = caller
            return caller.project_id
    return await keys.project_of(herald, authorization, client)


def sign_in_failures(app: Starlette) -> FailureThrottle:
    """The app's brake on failed sign-ins (IAM logins and refreshes, the cabinet's form):
    per address, with the same burst and rate as wrong API keys."""
    throttle: FailureThrottle | None = getattr(app.state, "sign_in_failures", None)
    if throttle is None:
        settings = app.state.herald.settings
        throttle = app.state.sign_in_failures = FailureThrottle(
            settings.failed_auth_burst, settings.failed_auth_per_minute
        )
    return throttle


async def throttled_sign_in(
    app: Starlette, client: str | None, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run a sign-in ``attempt`` (password, refresh token, sign-in link) unless the caller's
    address has failed too often lately (429 ``too_many_failed_logins``); a 401 it raises
    counts as a failure, anything else does not."""
    # ApiKeys.project_of spends and gives back the same way, but past the burst still lets a
    # valid key through from memory; a password cannot be checked without the slow hash.
    throttle = sign_in_failures(app)
    address = address_key(client)
    wait = throttle.take(address, time.monotonic())
    if wait is not None:
        raise TooManyRequests(
            f"Too many failed sign-ins came from your address; try again in {wait} seconds.",
            retry_after=wait,
            code="too_many_failed_logins",
        )
    try:
        result = await attempt()
    except Unauthorized:
        raise  # the attempt stays spent
    except BaseException:
        throttle.give_back(address, time.monotonic())
        raise
    throttle.give_back(address, time.monotonic())
    return result


async def project_id(
    request: Request, herald: HeraldDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The project whose ``Authorization: Bearer <apiKey or IAM token>`` came with the
    request."""
    checked: str | None = request.scope.get(PROJECT_SCOPE_KEY)
    if checked is not None:
        return checked
    client = request.client.host if request.client else None
    return await authorize(request.scope, herald, api_keys(request.app), authorization, client)


ProjectId = Annotated[str, Depends(project_id)]


async def caller_user_id(request: Request, project: ProjectId) -> str | None:
    """The user a request's IAM token speaks for; ``None`` for an API key (no person)."""
    caller: iam.Caller | None = request.scope.get(CALLER_SCOPE_KEY)
    return caller.user_id if caller is not None else None


CallerUserId = Annotated[str | None, Depends(caller_user_id)]
