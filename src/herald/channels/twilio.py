"""SMS through Twilio's Messages REST API (2010-04-01)."""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import httpx

from herald.channels.base import (
    OutboundMessage,
    PermanentError,
    ProviderError,
    Receipt,
    SenderAccount,
    TransientError,
)
from herald.channels.egress import TargetNotAllowed
from herald.channels.http import HTTPAnswer, ProviderClient, transport_errors

DEFAULT_BASE_URL = "https://api.twilio.com"
# Twilio's current limit for ValidityPeriod (seconds).
MAX_VALIDITY_SECONDS = 36000
# Whether Twilio sends Retry-After at all is unconfirmed; a value past a day is not a wait
# anyone meant, and an unbounded one would overflow the retry time.
MAX_RETRY_AFTER_SECONDS = 86400.0
# Herald's clock and Twilio's may disagree by this much about when a message was created.
CLOCK_SKEW = timedelta(seconds=5)
# A reconciliation lists one sender-to-person pair from the attempt's start on, so its
# messages fit in a page or two; the bound only matters for a very busy pair.
LIST_PAGE_SIZE = 1000
LIST_MAX_PAGES = 5


def _retry_after(response: HTTPAnswer) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError):
            return None  # malformed: fall back to our own backoff
        seconds = (parsed - datetime.now(parsed.tzinfo)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


def _date(value: object) -> datetime | None:
    return email.utils.parsedate_to_datetime(str(value)) if value else None


def _receipt(data: dict[str, Any]) -> Receipt:
    segments = data.get("num_segments")
    error_code = data.get("error_code")
    return Receipt(
        provider_message_id=str(data["sid"]),
        provider_status=str(data.get("status") or "queued"),
        num_segments=int(segments) if segments not in (None, "") else None,
        price=data.get("price"),
        price_unit=data.get("price_unit"),
        created_at=_date(data.get("date_created")),
        error_code=str(error_code) if error_code not in (None, "") else None,
        error_message=data.get("error_message") or None,
    )


def _is_twilio_error(data: object) -> TypeGuard[dict[str, Any]]:
    """Twilio's documented error body: an integer ``code`` and a ``message``."""
    if not isinstance(data, dict):
        return False
    code, message = data.get("code"), data.get("message")
    return isinstance(code, int) and not isinstance(code, bool) and isinstance(message, str)


def error_from_response(response: HTTPAnswer) -> ProviderError:
    """Turn a Twilio error answer into ours, keeping Twilio's code, message and more_info."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not _is_twilio_error(data):
        # Not Twilio's shape: maybe a proxy's page, maybe a service the base URL was pointed
        # at. Its words go nowhere a tenant reads them.
        data = {
            "message": f"Twilio answered HTTP {response.status_code} with a body that is not "
            "Twilio's"
        }
    code = str(data.get("code") or f"http_{response.status_code}")
    message = str(data["message"])
    more_info = data.get("more_info")
    kind: type[ProviderError]
    if response.status_code == 429 or code == "20429" or response.status_code >= 500:
        kind = TransientError
    else:
        kind = PermanentError
    return kind(
        code,
        message,
        more_info=more_info,
        http_status=response.status_code,
        retry_after=_retry_after(response),
    )


class TwilioSms:
    """The Twilio adapter: form-encoded requests with HTTP Basic auth, as Twilio expects."""

    name = "twilio"

    def __init__(self, client: ProviderClient) -> None:
        self._client = client

    def _messages_url(self, account: SenderAccount) -> str:
        base = (account.base_url or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/2010-04-01/Accounts/{account.account_id}/Messages.json"

    def _auth(self, account: SenderAccount) -> tuple[str, str]:
        return (account.account_id or "", account.credentials.get("authToken", ""))

    def _form(self, account: SenderAccount, message: OutboundMessage) -> dict[str, str]:
        """The create parameters; subclasses for other Twilio channels replace the content."""
        return self._with_delivery_options(
            {"To": message.to, "From": account.from_address, "Body": message.body}, message
        )

    @staticmethod
    def _with_delivery_options(form: dict[str, str], message: OutboundMessage) -> dict[str, str]:
        if message.status_callback:
            form["StatusCallback"] = message.status_callback
        if message.validity_seconds is not None:
            form["ValidityPeriod"] = str(
                max(1, min(MAX_VALIDITY_SECONDS, message.validity_seconds))
            )
        return form

    def _addresses(self, account: SenderAccount, message: OutboundMessage) -> tuple[str, str]:
        """(To, From) as Twilio stores them, for listing what was sent."""
        return message.to, account.from_address

    def _matches(self, item: dict[str, Any], message: OutboundMessage) -> bool:
        return bool(item.get("body") == message.body)

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        form = self._form(account, message)
        with transport_errors("Twilio"):
            response = await self._client.post_form(
                self._messages_url(account), form, auth=self._auth(account)
            )
        if response.status_code in (200, 201):
            return _receipt(response.json())
        raise error_from_response(response)

    async def find_sent(
        self, account: SenderAccount, message: OutboundMessage, since: datetime
    ) -> list[Receipt]:
        # No DateSent filter: a message Twilio took but still holds in its sender queue has no
        # date_sent, and a DateSent range would leave out exactly the message we look for.
        to, sender = self._addresses(account, message)
        params: dict[str, str] | None = {"To": to, "From": sender, "PageSize": str(LIST_PAGE_SIZE)}
        url: str | None = self._messages_url(account)
        found: list[Receipt] = []
        base = (account.base_url or DEFAULT_BASE_URL).rstrip("/")
        earliest = since - CLOCK_SKEW
        for _page in range(LIST_MAX_PAGES):
            if url is None:
                break
            data = await self._read(account, url, params, "Could not list messages")
            passed_since = False
            for item in data.get("messages", []):
                receipt = _receipt(item)
                if self._matches(item, message) and (
                    receipt.created_at is None or receipt.created_at >= earliest
                ):
                    found.append(receipt)
                # Twilio lists newest DateSent first. A message sent before the attempt began
                # was created before it, and so was everything listed after it: stop there.
                # Unsent ones (no date_sent) are taken to come first, as they would in
                # creation order; where Twilio puts them is undocumented. An old date_created
                # is no such mark: a long-queued message may be sent after the attempt's.
                sent = _date(item.get("date_sent"))
                passed_since = passed_since or (sent is not None and sent < earliest)
            next_uri = data.get("next_page_uri")
            url, params = (base + next_uri, None) if next_uri and not passed_since else (None, None)
        return found

    async def fetch(self, account: SenderAccount, provider_message_id: str) -> Receipt:
        """Twilio's current record of a message: its price only appears here, after sending."""
        url = self._messages_url(account).removesuffix(".json") + f"/{provider_message_id}.json"
        return _receipt(await self._read(account, url, None, "Could not fetch the message"))

    async def _read(
        self, account: SenderAccount, url: str, params: dict[str, str] | None, failure: str
    ) -> Any:
        """GET one of Twilio's records; ``failure`` starts the sentence when it is unreachable."""
        try:
            response = await self._client.get(url, params=params, auth=self._auth(account))
        except TargetNotAllowed as e:
            raise PermanentError("url_not_allowed", str(e)) from e
        except httpx.HTTPError as e:
            raise TransientError("provider_unreachable", f"{failure}: {e}") from e
        if response.status_code != 200:
            raise error_from_response(response)
        return response.json()

    async def aclose(self) -> None:
        await self._client.aclose()


# Twilio's message statuses in Herald's terms; None means "no news" (still on its way).
STATUS_MAP: dict[str, str | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "read": "read",
    "canceled": "cancelled",
    "receiving": None,
    "received": None,
}

# How far along each status is, so a late or repeated report never sets an earlier one:
# callbacks may arrive out of order (reference §3). Endings share a rank: none follows another.
STATUS_RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "receiving": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "received": 4,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}


def is_later_status(current: str | None, reported: str) -> bool:
    """Whether ``reported`` is news after ``current``: unknown statuses never replace known ones."""
    if current is None:
        return True
    return STATUS_RANK.get(reported, -1) > STATUS_RANK.get(current, -1)


def more_info_url(code: str) -> str:
    return f"https://www.twilio.com/docs/errors/{code}"
