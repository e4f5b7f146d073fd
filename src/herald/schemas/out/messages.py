"""Messages on the wire: TWIN's MessageItem and BatchResult, with Herald's own detail."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import Free, OutModel, Timestamp


class TwinError(OutModel):
    """TWIN's error object (a PHP exception dump): every key present when it is given, and
    Herald's machine ``code``."""

    code: str
    message: str
    file: str
    line: int
    trace: list[str]


class BatchResult(OutModel):
    """One created (or cancelled) message in TWIN's bare array of results."""

    id: str
    bulk_id: str
    group_id: str
    flow_id: str
    status: str
    channel: str
    error: TwinError | None


class ProviderError(OutModel):
    code: str
    message: str | None
    more_info: str | None


class ProviderInfo(OutModel):
    name: str | None
    message_id: str | None
    status: str | None
    num_segments: int | None
    price: str | None
    price_unit: str | None


class HistoryEntry(OutModel):
    status: str
    at: Timestamp | None
    source: str | None
    detail: str | None
    error_code: str | None
    channel: str


class AttemptOut(OutModel):
    number: int
    state: str
    started_at: Timestamp | None
    finished_at: Timestamp | None
    provider_message_id: str | None
    http_status: int | None
    error: ProviderError | None


class DeliveryOut(OutModel):
    """One channel of a message's cascade."""

    channel: str
    step: int
    required: bool
    to: str
    status: str
    provider: ProviderInfo
    error: ProviderError | None
    validity_period: int | None
    expires_at: Timestamp | None
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    updated_at: Timestamp | None
    attempts: list[AttemptOut]


class SentContent(OutModel):
    from_: str = Field(alias="from")
    text: str


class Zone(OutModel):
    name: str
    source: str | None


class LinkStats(OutModel):
    clicks: int
    first_clicked_at: Timestamp | None


class MessageItem(OutModel):
    """A message as TWIN's SDK parses it: the channel that speaks for it, and its history."""

    id: str
    bulk_id: str
    group_id: str
    flow_id: str
    task_id: str | None
    status: str
    status_code: int
    status_description: str
    channel: str
    part_count: int
    network: str | None
    template_id: str | None
    template_version: int | None
    template_name: str | None
    destination: Free
    message: SentContent
    template_variables: Free | None
    tracks: Free
    created_at: Timestamp
    send_at: Timestamp | None
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    expired_at: Timestamp | None
    expires_at: Timestamp | None
    allowed_time_ranges: list[list[str]]
    timezone: Zone | None
    error: ProviderError | None
    provider: ProviderInfo
    callback_url: str | None
    callback_data: str | None
    short_links: LinkStats
    history: list[HistoryEntry] = Field(default_factory=list)


class MessageDetail(MessageItem):
    """One message: the list item, the primary channel's attempts, and every channel."""

    attempts: list[AttemptOut]
    deliveries: list[DeliveryOut]


class MessageList(OutModel):
    count: int
    items: list[MessageItem]
    next_cursor: str | None


class GroupMember(OutModel):
    id: str
    status: str
    channel: str
    destination: Free


class GroupOut(OutModel):
    group_id: str
    status: str
    delivered_message_id: str | None
    delivered_at: Timestamp | None
    messages: list[GroupMember]
