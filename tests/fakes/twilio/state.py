"""The fake Twilio's message state: what it recorded, its knobs, and the messages it holds.

`TwilioState` is the part of `FakeTwilio` that knows nothing of HTTP: the app reads requests
into it and the callback sender reports into it. Its lock makes it safe to read from the test
thread while the server thread writes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from tests.fakes.harness import take_next
from tests.fakes.twilio.wire import (
    API_VERSION,
    ASYNC_ERRORS,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_ERROR,
    POOL_SENDER,
    PRICE_PER_SEGMENT,
    date_stamp,
    first,
    num_segments,
)

# "queued" keeps a message in Twilio's sender queue for good (a backed-up queue): no date_sent,
# no callback.
OUTCOMES: Final = frozenset({"delivered", "undelivered", "failed", "sent", "read", "queued"})
# A later status never gives way to an earlier one, so reversed callbacks leave the stored
# message at its final status, as Twilio's own resource would be.
_RANK: Final = {
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    # WhatsApp only: the recipient opened it (read receipts on).
    "read": 5,
}


@dataclass(frozen=True, slots=True)
class CreateRecord:
    """One create request the fake received, whatever it answered.

    `response_status` is 0 when the fake was down and dropped the connection unanswered.
    """

    params: dict[str, list[str]]
    at: float
    wall: float
    response_status: int
    sid: str | None
    account_sid: str
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One status callback the fake tried to deliver.

    `status_code` is Herald's answer, or None when no answer came (`error` says why).
    """

    url: str
    params: dict[str, str]
    status_code: int | None
    at: float
    signature: str
    attempts: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InboundResult:
    """Herald's answer to one inbound-message webhook the fake posted (like a phone texting)."""

    status_code: int
    text: str
    content_type: str
    params: dict[str, str]
    signature: str


@dataclass(slots=True)
class Failure:
    remaining: int
    http_status: int
    code: int
    retry_after: float | None


@dataclass(slots=True)
class StoredMessage:
    seq: int
    sid: str
    account_sid: str
    status_callback: str | None
    messaging_service_sid: str | None
    segments: int
    whatsapp: bool
    steps: tuple[str, ...]
    error_code: int | None
    generation: int
    data: dict[str, Any]
    deleted: bool = False
    # When it left the queue (date_sent, to the microsecond for ordering the list).
    sent_at: datetime | None = None


ListKey = tuple[int, int, int]


def list_key(message: StoredMessage) -> ListKey:
    """Where a message sorts in a list, highest first: newest DateSent first (reference §8).

    A message not sent yet has no date_sent; it is listed before every sent one [U: Twilio
    does not document where], newest created first.
    """
    sent = message.sent_at
    if sent is None:
        return (1, 0, message.seq)
    return (0, int(sent.timestamp() * 1_000_000), message.seq)


def page_token(key: ListKey) -> str:
    return "PA" + "-".join(map(str, key))


def parse_page_token(token: str) -> ListKey:
    parts = token.removeprefix("PA").split("-")
    if not token.startswith("PA") or len(parts) != 3:
        raise ValueError(token)
    unsent, sent, seq = (int(p) for p in parts)
    return (unsent, sent, seq)


def matches_date_sent(
    sent: datetime | None, on: date | None, after: date | None, before: date | None
) -> bool:
    """Whether a message sent at ``sent`` passes the DateSent filters given (None: not given).

    A message never sent has no date_sent, so it matches no DateSent filter at all.
    """
    if on is None and after is None and before is None:
        return True
    if sent is None:
        return False
    day = sent.date()
    return (
        (on is None or day == on)
        and (after is None or day >= after)
        and (before is None or day <= before)
    )


class TwilioState:
    """Accounts, records, knobs and stored messages of one fake Twilio.

    Knobs may be turned from any thread; the records (`requests`, `messages`, `fetches`,
    `lists`, `callbacks_sent`, `callbacks_failed`) are appended by the server thread and meant
    to be read by the test.
    """

    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        self._accounts = (
            dict(accounts) if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
        )
        if not self._accounts:
            raise ValueError("FakeTwilio needs at least one account")
        self.requests: list[CreateRecord] = []
        self.messages: dict[str, dict[str, Any]] = {}
        # Every fetch (the sid asked for) and every list (its query), whatever the answer.
        self.fetches: list[str] = []
        self.lists: list[dict[str, list[str]]] = []
        self.callbacks_sent: list[CallbackRecord] = []
        # Callbacks not answered with a 2xx (including those with no answer at all).
        self.callbacks_failed: list[CallbackRecord] = []

        self._lock = threading.Lock()
        self._callbacks_changed = threading.Condition(self._lock)
        self._outcomes: dict[str, tuple[str, int | None]] = {}
        self._failures: deque[Failure] = deque()
        self._down = False
        self._answers_lost = False
        self._answer_delay = 0.0
        self._priced = True
        self._reversed = False
        self._generation = 0
        self._created = 0
        self._store: dict[str, StoredMessage] = {}
        self._ordered: list[StoredMessage] = []

    @property
    def account_sid(self) -> str:
        """The first configured account SID."""
        return next(iter(self._accounts))

    @property
    def auth_token(self) -> str:
        """The auth token of `account_sid`."""
        return self._accounts[self.account_sid]

    def auth_token_for(self, account_sid: str) -> str:
        """The auth token the fake signs `account_sid`'s callbacks with."""
        return self._accounts[account_sid]

    # -- records and knobs ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, records and knobs."""
        with self._lock:
            self._generation += 1
            self.requests.clear()
            self.messages.clear()
            self.fetches.clear()
            self.lists.clear()
            self.callbacks_sent.clear()
            self.callbacks_failed.clear()
            self._store.clear()
            self._ordered.clear()
            self._outcomes.clear()
            self._failures.clear()
            self._down = False
            self._answers_lost = False
            self._answer_delay = 0.0
            self._priced = True
            self._reversed = False
            self._created = 0

    def set_outcome(self, to: str, status: str, error_code: int | None = None) -> None:
        """Set the final status of messages later created for `to` (delivered by default)."""
        if status not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {status!r}")
        if status == "read" and not to.startswith("whatsapp:"):
            raise ValueError("only WhatsApp messages are read (to must start with whatsapp:)")
        if error_code is None:
            error_code = DEFAULT_ERROR.get(status)
        with self._lock:
            self._outcomes[to] = (status, error_code)

    def fail_next(
        self,
        count: int,
        *,
        http_status: int = 500,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` creates with this error, before auth, creating nothing."""
        if count <= 0:
            return
        failure = Failure(
            remaining=count,
            http_status=http_status,
            code=code if code is not None else 20000 + http_status,
            retry_after=retry_after,
        )
        with self._lock:
            self._failures.append(failure)

    def set_down(self, down: bool) -> None:
        """While down, creates are read, recorded, and their connection closed unanswered."""
        with self._lock:
            self._down = down

    def lose_answers(self, lost: bool) -> None:
        """While set, creates are carried out (the message exists and goes on) but their
        connection is closed unanswered: Twilio took the message and the answer was lost.

        They are recorded as created (201, with their sid), which is what Twilio did.
        """
        with self._lock:
            self._answers_lost = lost

    def set_answer_delay(self, seconds: float) -> None:
        """Hold each successful create's 201 this long. The message exists from the moment
        the request is read, and goes on to its outcome whether or not the client waits.

        Twilio takes a few hundred milliseconds to answer, so a client that dies meanwhile
        leaves a message it never learnt the sid of: what reconciliation has to find.
        """
        if seconds < 0:
            raise ValueError("the answer delay cannot be negative")
        with self._lock:
            self._answer_delay = seconds

    def set_priced(self, priced: bool) -> None:
        """Whether messages sent from now on get a price (on by default; off: never priced)."""
        with self._lock:
            self._priced = priced

    def callback_order(self, order: str) -> None:
        """Send status callbacks of messages created from now on in "normal" or "reversed" order."""
        if order not in ("normal", "reversed"):
            raise ValueError(f"order must be 'normal' or 'reversed', not {order!r}")
        with self._lock:
            self._reversed = order == "reversed"

    def wait_for_callbacks(self, n: int, timeout: float = 10.0) -> None:
        """Block until `n` callbacks were answered (any HTTP status); TimeoutError otherwise."""
        with self._callbacks_changed:
            if not self._callbacks_changed.wait_for(lambda: len(self.callbacks_sent) >= n, timeout):
                raise TimeoutError(
                    f"{len(self.callbacks_sent)} of {n} callbacks answered after {timeout} s"
                )

    def stats(self) -> dict[str, int]:
        """Counters, as served by GET /_fake/stats."""
        with self._lock:
            return {
                "creates": len(self.requests),
                "created": self._created,
                "callbacks_sent": len(self.callbacks_sent),
                "callbacks_failed": len(self.callbacks_failed),
                "messages": len(self._store),
            }

    # -- messages ----------------------------------------------------------------------------

    def _take_failure(self) -> Failure | None:
        if not self._failures:  # no lock on the hot path when no failure is queued
            return None
        return take_next(self._failures, self._lock)

    def _record_create(
        self,
        params: dict[str, list[str]],
        account_sid: str,
        status: int,
        sid: str | None,
        code: int | None,
    ) -> None:
        record = CreateRecord(
            params=params,
            at=time.monotonic(),
            wall=time.time(),
            response_status=status,
            sid=sid,
            account_sid=account_sid,
            error_code=code,
        )
        with self._lock:
            self.requests.append(record)

    def _new_message(self, account_sid: str, params: dict[str, list[str]]) -> StoredMessage:
        to = first(params, "To") or ""
        sender = first(params, "From") or None
        service = first(params, "MessagingServiceSid") or None
        body = first(params, "Body") or ""
        media = params.get("MediaUrl", [])
        whatsapp = to.startswith("whatsapp:")
        sid = ("MM" if media else "SM") + secrets.token_hex(16)
        now = datetime.now(UTC)
        stamp = date_stamp(now)
        segments = 1 if whatsapp or media else num_segments(body)
        # Without a From, a Messaging Service accepts first and picks a sender later.
        pooled = sender is None
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
        data: dict[str, Any] = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "0" if pooled else str(segments),
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": "accepted" if pooled else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": uri,
        }
        with self._lock:
            outcome, error_code = self._outcomes.get(to, ("delivered", None))
            steps = {
                "delivered": ("sent", "delivered"),
                "undelivered": ("sent", "undelivered"),
                "failed": ("failed",),
                "read": ("sent", "delivered", "read"),
                "sent": ("sent",),
                "queued": (),
            }[outcome]
            if pooled:
                steps = ("queued", *steps)
            if self._reversed:
                steps = steps[::-1]
            message = StoredMessage(
                seq=len(self._ordered),
                sid=sid,
                account_sid=account_sid,
                status_callback=first(params, "StatusCallback") or None,
                messaging_service_sid=service,
                segments=segments,
                whatsapp=whatsapp,
                steps=steps,
                error_code=error_code,
                generation=self._generation,
                data=data,
            )
            self._ordered.append(message)
            self._store[sid] = message
            self.messages[sid] = data
            self._created += 1
        return message

    def _find(self, account_sid: str, sid: str) -> StoredMessage | None:
        message = self._store.get(sid)
        if message is None or message.deleted:
            return None
        return message if message.account_sid == account_sid else None

    def _remove(self, message: StoredMessage) -> None:
        with self._lock:
            message.deleted = True
            self._store.pop(message.sid, None)
            self.messages.pop(message.sid, None)

    def _select(
        self,
        account_sid: str,
        wanted: Mapping[str, str],
        sent: tuple[date | None, date | None, date | None],
        after: ListKey | None,
        skip: int,
        page_size: int,
    ) -> tuple[list[StoredMessage], bool]:
        """One page of the list, newest first: the messages and whether more follow.

        `sent` is the DateSent filters (on, not before, not after).
        """
        on, not_before, not_after = sent
        with self._lock:  # sent_at changes as messages progress
            snapshot = sorted(self._ordered, key=list_key, reverse=True)
        items: list[StoredMessage] = []
        more = False
        for message in snapshot:
            if (
                (after is not None and list_key(message) >= after)
                or message.deleted
                or message.account_sid != account_sid
                or ("To" in wanted and message.data["to"] != wanted["To"])
                or ("From" in wanted and message.data["from"] != wanted["From"])
                or not matches_date_sent(message.sent_at, on, not_before, not_after)
            ):
                continue
            if skip:
                skip -= 1
                continue
            if len(items) == page_size:
                more = True
                break
            items.append(message)
        return items, more

    def _replace_data(self, message: StoredMessage, data: dict[str, Any]) -> None:
        # Copy-on-write: a reader in the test thread never sees a half-updated message.
        with self._lock:
            message.data = data
            if message.generation == self._generation and not message.deleted:
                self.messages[message.sid] = data

    def _advance(self, message: StoredMessage, status: str) -> None:
        if _RANK[status] <= _RANK[message.data["status"]]:
            return
        now = datetime.now(UTC)
        stamp = date_stamp(now)
        data = {**message.data, "status": status, "date_updated": stamp}
        if data["from"] is None:
            data["from"] = POOL_SENDER
            data["num_segments"] = str(message.segments)
        if status in ("sent", "delivered", "undelivered"):
            if data["date_sent"] is None:
                data["date_sent"] = stamp
                with self._lock:
                    message.sent_at = now
            if self._priced:
                data["price"] = f"-{message.segments * PRICE_PER_SEGMENT:.5f}"
                data["price_unit"] = "USD"
        if status in ("failed", "undelivered"):
            code = message.error_code or DEFAULT_ERROR[status]
            data["error_code"] = code
            data["error_message"] = ASYNC_ERRORS.get(code, "Unknown error")
        self._replace_data(message, data)

    def _record_callback(self, message: StoredMessage, record: CallbackRecord) -> None:
        with self._callbacks_changed:
            if message.generation != self._generation:
                return
            if record.status_code is not None:
                self.callbacks_sent.append(record)
            if record.status_code is None or not 200 <= record.status_code < 300:
                self.callbacks_failed.append(record)
            self._callbacks_changed.notify_all()
