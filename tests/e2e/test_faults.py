"""The fault suite: Herald's processes SIGKILLed, again and again, while it sends through the
fake Twilio, on SQLite (`herald serve` alone) and on PostgreSQL (an API process and two
workers). At the end every accepted message is final, created at the fake exactly once, and
ends as the fake says it did.

A message counts as accepted only once the client got its 201. A POST cut off by a kill has
an unknown outcome, so the client sends it again with the same Idempotency-Key once Herald is
back: either the first one was stored and is replayed, or it was not and is stored now.

Run alone with `pytest -m fault -s`; `make faults` runs a bigger configuration through
HERALD_FAULT_MESSAGES, HERALD_FAULT_KILLS and HERALD_FAULT_SEED.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.config import Settings
from herald.domain.statuses import Status
from tests.e2e.fault_processes import HeraldProcess, child_env
from tests.e2e.helpers import FINAL, add_twilio_sender, wait_up
from tests.fakes.twilio import CreateRecord, FakeTwilio
from tests.servers import free_port, running_herald

pytestmark = pytest.mark.fault

MESSAGES = int(os.environ.get("HERALD_FAULT_MESSAGES", "300"))
KILLS = os.environ.get("HERALD_FAULT_KILLS")
SEED = os.environ.get("HERALD_FAULT_SEED")
PER_REQUEST = 5
BACKLOG = 50
# Twilio takes a moment to answer a create and to report; both widen the windows a kill
# can land in (a create taken but not yet answered, a status callback not yet delivered).
ANSWER_DELAY = 0.2
CALLBACK_DELAY = 0.1
# The fake's outcome for message i: most are delivered, some end otherwise, with a reason.
OUTCOMES = {3: ("undelivered", 30003), 7: ("failed", 30007)}
# Bounds, not expectations: generous for a loaded two-core machine.
SETTLE_SECONDS = 180.0
STEP_SECONDS = 90.0


def phone(i: int) -> str:
    # One destination per message, so reconciling one reads a list of one.
    return f"+1415{2_000_000 + i:07d}"


@dataclass
class Load:
    """The client: posts messages in small requests, each once, while Herald is killed.

    It posts at least ``total``, and goes on until the kills are over, so every kill lands
    while messages are being posted and sent; and it keeps no more than BACKLOG messages
    ahead of what reached the fake, as a client sending at Herald's pace would.
    """

    client: httpx.AsyncClient
    fake: FakeTwilio
    tag: str
    total: int
    kills_over: bool = False
    accepted: dict[str, str] = field(default_factory=dict)  # Herald's id -> body
    posting: bool = False  # a request is on the wire
    cut_off: int = 0  # requests whose connection died unanswered: sent again, same key
    replayed: int = 0  # of those, the ones Herald had stored before it died

    async def run(self) -> None:
        start = 0
        while start < self.total or not self.kills_over:
            for _ in range(3000):  # 0.1 s apart: five minutes without a send
                if len(self.accepted) - len(self.fake.requests) < BACKLOG:
                    break
                await asyncio.sleep(0.1)
            numbers = range(start, start + PER_REQUEST)
            for i in numbers:
                if i % 10 in OUTCOMES:
                    self.fake.set_outcome(phone(i), *OUTCOMES[i % 10])
            payload = {
                "messages": [
                    {
                        "destinations": [{"phone": phone(i)}],
                        "channels": {"sms": {"text": f"fault {self.tag} #{i}"}},
                    }
                    for i in numbers
                ]
            }
            await self._post(payload, f"{self.tag}-{start}")
            start += PER_REQUEST

    async def _post(self, payload: dict[str, Any], key: str) -> None:
        cut = False
        for _ in range(3000):  # 0.1 s apart: five minutes of Herald being unreachable
            self.posting = True
            try:
                response = await self.client.post(
                    "/api/v1/messages", json=payload, headers={"Idempotency-Key": key}
                )
            except httpx.ConnectError:  # never sent: Herald is down
                await asyncio.sleep(0.1)
                continue
            except httpx.TransportError:  # sent, and Herald died before answering
                cut = True
                await asyncio.sleep(0.1)
                continue
            finally:
                self.posting = False
            assert response.status_code == 201, response.text
            self.cut_off += cut
            self.replayed += response.headers.get("Idempotent-Replayed") == "true"
            for result, message in zip(response.json(), payload["messages"], strict=True):
                self.accepted[result["id"]] = message["channels"]["sms"]["text"]
            return
        raise AssertionError(f"Herald did not take request {key} back in five minutes")


@dataclass
class Run:
    """One scenario's processes, load and fake, and the checks made while it runs."""

    fake: FakeTwilio
    load: Load
    load_task: asyncio.Task[None]
    processes: list[HeraldProcess]
    api: HeraldProcess
    rng: random.Random
    kills: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Fail at once if a process died on its own or the load gave up."""
        for p in self.processes:
            assert p.alive(), p.crashed()
        if self.load_task.done():
            self.load_task.result()

    async def until(self, ready: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(STEP_SECONDS):
                while not ready():
                    self.check()
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(
                f"waited {STEP_SECONDS:g} s for {what}; {await self.describe()}"
            ) from None

    async def describe(self) -> str:
        """Where the run stands, for a failure message."""
        standing: dict[str, object] = {}
        try:
            for status in Status:
                if n := await count(self.load.client, status=status.value):
                    standing[status.value] = n
        except (httpx.HTTPError, AssertionError) as e:
            standing["unreadable"] = repr(e)
        return (
            f"kills so far {self.kills}, accepted {len(self.load.accepted)}, creates at the "
            f"fake {len(self.fake.requests)}, posting {self.load.posting}, "
            f"Herald's messages by status {standing}"
        )

    async def kill(self, targets: list[HeraldProcess], threshold: int) -> None:
        """SIGKILL ``targets`` once ``threshold`` messages are accepted, right after the fake
        took a create (so at least one is taken but not yet answered), then start them again."""
        await self.until(lambda: len(self.load.accepted) >= threshold, f"{threshold} accepted")
        seen = len(self.fake.requests)
        await self.until(lambda: len(self.fake.requests) > seen, "a create at the fake")
        if self.api in targets:
            # The API killed in the middle of a POST leaves the client not knowing.
            await self.until(lambda: self.load.posting, "a POST on the wire")
        for p in targets:
            p.kill()
        self.kills.append("+".join(p.name for p in targets))
        # Down long enough for the fake's callbacks (and their retries) to find no one.
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))
        for p in targets:
            p.start()
        if self.api in targets:
            assert self.api.process is not None
            await wait_up(self.load.client, self.api.process, self.api.log)


async def count(client: httpx.AsyncClient, **params: str) -> int:
    response = await client.get("/api/v1/messages", params={**params, "limit": 1})
    assert response.status_code == 200, response.text
    total: int = response.json()["count"]
    return total


async def all_messages(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    params: dict[str, str] = {"limit": "1000", "withoutCount": "true"}
    for _ in range(10_000):
        page = (await client.get("/api/v1/messages", params=params)).json()
        items.update((item["id"], item) for item in page["items"])
        if page["nextCursor"] is None:
            return items
        params["cursor"] = page["nextCursor"]
    raise AssertionError("the message list did not end")


def verdict(
    run: Run, items: dict[str, dict[str, Any]], label: str, seconds: float, seed: int
) -> tuple[str, list[str]]:
    """The summary line, and every way the run went wrong (none when it held)."""
    accepted = run.load.accepted
    creates: dict[str, list[CreateRecord]] = collections.defaultdict(list)
    for record in run.fake.requests:
        creates[record.params["Body"][0]].append(record)
    duplicates = {body: len(rs) for body, rs in creates.items() if len(rs) > 1}
    bodies = set(accepted.values())
    unknown = sorted(set(creates) - bodies)  # sent, but never accepted by the client
    extra = sorted(set(items) - set(accepted))  # stored, but never answered with a 201
    not_final = {i: items[i]["status"] for i in accepted if items[i]["status"] not in FINAL}
    # Final without reaching the fake: allowed only with Herald's reason for it.
    unsent = {i: items[i]["error"] for i, body in accepted.items() if body not in creates}
    lost = [i for i, error in unsent.items() if i not in not_final and not error]
    final_unsent = {i: e for i, e in unsent.items() if i not in not_final and e}
    wrong: dict[str, object] = {}
    for i, body in accepted.items():
        if body not in creates or i in not_final:
            continue
        record = creates[body][-1]
        theirs = run.fake.messages[record.sid or ""]["status"]
        ours = items[i]["status"], items[i]["provider"]["messageId"]
        if ours != (theirs, record.sid):
            wrong[i] = (ours, (theirs, record.sid))
    summary = (
        f"fault suite {label}: messages={len(accepted)} kills={len(run.kills)} "
        f"({', '.join(run.kills)}) cut-off-posts={run.load.cut_off} "
        f"replayed={run.load.replayed} duplicates={len(duplicates)} lost={len(lost)} "
        f"not-final={len(not_final)} final-unsent={len(final_unsent)} "
        f"reconcile-lists={len(run.fake.lists)} read-backs={len(run.fake.fetches)} "
        f"callbacks-lost={len(run.fake.callbacks_failed)} seconds={seconds:.1f} seed={seed}"
    )
    problems = []
    if duplicates:
        problems.append(f"created more than once at the fake: {dict(list(duplicates.items())[:5])}")
    if unknown or extra:
        problems.append(f"sent or stored without a 201: {unknown[:5]} {extra[:5]}")
    if not_final:
        problems.append(f"not final: {dict(list(not_final.items())[:5])}")
    if lost:
        problems.append(f"lost (never sent, no reason): {lost[:5]}")
    if wrong:
        problems.append(f"Herald's status differs from the fake's: {list(wrong.items())[:5]}")
    if final_unsent:
        print(f"\nfinal without a send, with Herald's reason: {list(final_unsent.items())[:5]}")
    if not run.fake.lists:
        problems.append("no kill left an attempt to reconcile: the fault was not exercised")
    if not run.fake.callbacks_failed:
        problems.append("no status callback was lost: read-back was not exercised")
    return summary, problems


async def run_scenario(
    settings: Settings,
    tmp_path: Path,
    topology: Callable[[dict[str, str], int, Path], list[HeraldProcess]],
    plan: Callable[[list[HeraldProcess], random.Random], list[list[HeraldProcess]]],
    label: str,
) -> None:
    seed = int(SEED) if SEED else random.randrange(1 << 32)
    rng = random.Random(seed)
    started = time.monotonic()
    with FakeTwilio(callback_delay=CALLBACK_DELAY) as fake:
        fake.set_answer_delay(ANSWER_DELAY)
        # The test's own Herald only makes the project and its sender; then it is gone.
        async with running_herald(settings, run_workers=False) as herald:
            api_key = herald.project.api_key
            async with herald.client() as setup:
                await add_twilio_sender(setup, fake)
        port = free_port()
        env = child_env(settings, f"http://127.0.0.1:{port}", tmp_path / "data")
        processes = topology(env, port, tmp_path)
        api = processes[0]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        ) as client:
            load = Load(client, fake, f"{label}-{seed}", MESSAGES)
            load_task = None
            try:
                for p in processes:
                    p.start()
                assert api.process is not None
                await wait_up(client, api.process, api.log)
                load_task = asyncio.create_task(load.run())
                run = Run(fake, load, load_task, processes, api, rng)
                kills = plan(processes, rng)
                thresholds = sorted(
                    rng.sample(range(MESSAGES // 10, MESSAGES * 17 // 20), len(kills))
                )
                for targets, threshold in zip(kills, thresholds, strict=True):
                    await run.kill(targets, threshold)
                load.kills_over = True
                await run.until(run.load_task.done, "the load to be accepted")
                run.check()
                try:
                    async with asyncio.timeout(SETTLE_SECONDS):
                        final = ",".join(sorted(FINAL))
                        while await count(client, status=final) < len(load.accepted):
                            run.check()
                            await asyncio.sleep(0.25)
                except TimeoutError:
                    pass  # the verdict says which are not final
                items = await all_messages(client)
            finally:
                if load_task is not None and not load_task.done():
                    load_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await load_task
                for p in processes:
                    p.stop()
    summary, problems = verdict(run, items, label, time.monotonic() - started, seed)
    print(f"\n{summary}")
    assert not problems, summary + "\n" + "\n".join(problems)


def serve_alone(env: dict[str, str], port: int, logs: Path) -> list[HeraldProcess]:
    """`herald serve`: the API and the dispatcher in one process."""
    return [HeraldProcess("serve", ["serve", "--port", str(port)], env, logs / "serve.log")]


def api_and_two_workers(env: dict[str, str], port: int, logs: Path) -> list[HeraldProcess]:
    """`herald serve --no-workers` (the API, and the endpoint of status callbacks) first."""
    api = ["serve", "--port", str(port), "--no-workers"]
    return [
        HeraldProcess("api", api, env, logs / "api.log"),
        HeraldProcess("worker1", ["worker"], env, logs / "worker1.log"),
        HeraldProcess("worker2", ["worker"], env, logs / "worker2.log"),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_serve_killed_while_sending(settings: Settings, tmp_path: Path) -> None:
    def plan(processes: list[HeraldProcess], rng: random.Random) -> list[list[HeraldProcess]]:
        return [processes] * int(KILLS or 4)

    await run_scenario(settings, tmp_path, serve_alone, plan, "sqlite/serve")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workers_and_api_killed_while_sending(settings: Settings, tmp_path: Path) -> None:
    def plan(processes: list[HeraldProcess], rng: random.Random) -> list[list[HeraldProcess]]:
        api, *workers = processes
        # The API alone: the status callbacks find no one while the workers go on sending.
        # Everything at once: what was in flight is orphaned with its callbacks lost, so only
        # reconciliation can tell (with the API alive, a callback settles it first). The
        # other kills take the workers, one or both.
        choices = [[workers[0]], [workers[1]], workers]
        kills = [[api], processes] + [rng.choice(choices) for _ in range(int(KILLS or 5) - 2)]
        rng.shuffle(kills)
        return kills

    await run_scenario(settings, tmp_path, api_and_two_workers, plan, "postgresql/api+2-workers")
