"""Request dependencies: the shared Herald graph and the calling project."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.applications import Starlette

from herald.api.throttle import FailureThrottle, address_key
from herald.bootstrap import Herald
from herald.config import Settings
from herald.errors import TooManyRequests, Unauthorized
from herald.services.projects import authenticate, hash_key, key_owners


async def get_herald(request: Request) -> Herald:
    # async on purpose: FastAPI runs plain-def dependencies in a worker thread, a thread hop
    # on every request.
    herald: Herald = request.app.state.herald
    return herald


HeraldDep = Annotated[Herald, Depends(get_herald)]

# Where the API key check ahead of FastAPI (api.early_auth) leaves the project it found.
PROJECT_SCOPE_KEY = "herald.project_id"
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


async def project_id(
    request: Request, herald: HeraldDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The project whose ``Authorization: Bearer <apiKey>`` came with the request."""
    checked: str | None = request.scope.get(PROJECT_SCOPE_KEY)
    if checked is not None:
        return checked
    client = request.client.host if request.client else None
    return await api_keys(request.app).project_of(herald, authorization, client)


ProjectId = Annotated[str, Depends(project_id)]
