"""The project's settings, its bandwidth (TWIN) and its senders on the wire."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import Number, OutModel, Timestamp


class ProjectOut(OutModel):
    id: str
    name: str
    default_timezone: str
    rate_limit: Number | None
    callback_url: str | None
    provider_aliases: dict[str, str]
    created_at: Timestamp


class BandwidthItem(OutModel):
    company_id: int
    channel: str | None
    provider: str | None
    bandwidth: str


class BandwidthList(OutModel):
    count: int
    items: list[BandwidthItem]


class TelegramWebhook(OutModel):
    """What to give Telegram's setWebhook so people's answers reach Herald."""

    inbound_webhook_url: str
    webhook_secret_token: str


class SenderOut(OutModel):
    """TWIN's sender (companyId, from, channel, provider, price) and Herald's fields.

    Secrets are never returned; a Telegram sender also carries its webhook settings.
    """

    id: str
    company_id: int
    from_: str = Field(alias="from")
    channel: str
    provider: str
    price: str
    account_sid: str | None
    base_url: str | None
    rate_limit: Number | None
    default: bool
    smart_encoding: bool
    created_at: Timestamp
    inbound_webhook_url: str | None = None
    webhook_secret_token: str | None = None


class SenderList(OutModel):
    count: int
    items: list[SenderOut]
