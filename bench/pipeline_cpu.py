"""CPU per message of each stage of the SMS pipeline, in one process, without provider HTTP.

The end-to-end benchmark (sms_throughput.py) shares a noisy 2-core machine with the fake
Twilio; this one measures Herald's own work per stage in CPU time, which moves far less
from run to run, so a change can be judged in a minute:

- accept: POST /api/v1/messages in batches of 500 (through the ASGI app, no sockets);
- dispatch: claim, hand to the adapter, record the answer (the dispatcher's run_once);
  the adapter answers at once as Twilio does (a sid, status queued);
- callbacks: Twilio's "sent" then "delivered" status callback for every message, signed,
  128 at a time, so the group committer batches them about as it does end to end.

    .venv/bin/python bench/pipeline_cpu.py [--messages 5000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ACCOUNT_SID, AUTH_TOKEN, LOOPBACK_HOSTS
from herald.api.app import create_app
from herald.bootstrap import Herald, build, settle_after_start
from herald.channels.base import OutboundMessage, Receipt, SenderAccount
from herald.config import Settings
from herald.dispatch.loop import Dispatcher
from herald.domain.signatures import twilio_signature
from herald.services.delivery.twilio_reports import TwilioReport
from herald.services.projects import create_project
from herald.services.sender_accounts import NewSender
from herald.services.senders import add_sender
from herald.store.migrate import upgrade

FROM = "+15005550006"
CALLBACKS_IN_FLIGHT = 128


class AnsweringTwilio:
    """Answers every send as Twilio accepts one, and keeps what the callbacks need."""

    name = "twilio"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (status callback URL, sid)

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        sid = "SM" + secrets.token_hex(16)
        assert message.status_callback is not None
        self.sent.append((message.status_callback, sid))
        return Receipt(provider_message_id=sid, provider_status="queued", num_segments=1)

    async def find_sent(
        self, account: SenderAccount, message: OutboundMessage, since: datetime
    ) -> list[Receipt]:
        return []

    async def aclose(self) -> None:
        pass


async def accept(herald: Herald, api_key: str, n: int) -> None:
    app = create_app(herald, run_workers=False)
    app.state.herald = herald
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://herald",
        headers={"Authorization": f"Bearer {api_key}"},
    ) as client:
        for first in range(0, n, 500):
            body = {
                "messages": [
                    {
                        "destinations": [{"phone": f"+1415555{i % 10000:04d}"}],
                        "channels": {"sms": {"text": f"Benchmark message {i}"}},
                    }
                    for i in range(first, min(n, first + 500))
                ]
            }
            (await client.post("/api/v1/messages", json=body)).raise_for_status()


async def dispatch(herald: Herald) -> int:
    dispatcher = Dispatcher(herald)
    handled = 0
    while done := await dispatcher.run_once():
        handled += done
    return handled


async def callbacks(herald: Herald, sent: list[tuple[str, str]], status: str) -> None:
    # End to end (sms_throughput.py), the group committer applied 107 callbacks a batch on
    # average: about as many as this many in flight.
    limit = asyncio.Semaphore(CALLBACKS_IN_FLIGHT)

    async def one(callback: str, sid: str) -> None:
        url = callback.partition("#")[0]  # Twilio neither sends nor signs the fragment
        params = {"MessageSid": [sid], "MessageStatus": [status], "AccountSid": [ACCOUNT_SID]}
        report = TwilioReport(
            attempt_id=url.rsplit("/", 1)[1],
            url=url,
            params=params,
            signature=twilio_signature(url, params, AUTH_TOKEN),
            received_at=herald.clock.now(),
        )
        async with limit:
            assert await herald.twilio_reports.submit(report) is True

    await asyncio.gather(*(one(url, sid) for url, sid in sent))


async def run(n: int, database_url: str | None, workdir: Path) -> dict[str, float]:
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'herald.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        public_url="http://127.0.0.1:8000",
        secret_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        allowed_private_hosts=tuple(LOOPBACK_HOSTS.split(",")),
    )
    twilio = AnsweringTwilio()
    herald = build(settings, adapters={"twilio": twilio})
    async with herald.sessions() as session, session.begin():
        project = await create_project(session, herald.vault, "bench")
        sender = NewSender(
            channel="sms",
            provider="twilio",
            from_address=FROM,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            base_url="http://127.0.0.1:9",
        )
        await add_sender(
            session, herald.vault, project.project_id, sender, urls=settings.url_policy
        )
    settle_after_start()
    stages: dict[str, float] = {}
    try:
        start = time.process_time()
        await accept(herald, project.api_key, n)
        stages["accept (API, 500 per request)"] = time.process_time() - start
        start = time.process_time()
        handled = await dispatch(herald)
        stages["dispatch (claim, call, record)"] = time.process_time() - start
        assert handled == n, f"dispatched {handled} of {n}"
        for status in ("sent", "delivered"):
            start = time.process_time()
            await callbacks(herald, twilio.sent, status)
            stages[f"status callback '{status}'"] = time.process_time() - start
    finally:
        await herald.aclose()
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh SQLite file in a temporary directory"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stages = asyncio.run(run(args.messages, args.database_url, Path(tmp)))
    print(f"Herald CPU per message, {args.messages:,} messages, one process, no provider HTTP:")
    for name, seconds in stages.items():
        print(f"  {name:34s} {1e6 * seconds / args.messages:6.0f} µs")
    total = sum(stages.values())
    print(f"  {'total':34s} {1e6 * total / args.messages:6.0f} µs")


if __name__ == "__main__":
    main()
