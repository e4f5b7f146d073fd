"""Bots, their conversations, opt-out suppressions and web chat visitors on the wire."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import Number, OutModel, Timestamp


class Rule(OutModel):
    match: str
    pattern: str
    reply: str


class WebchatLinks(OutModel):
    script_url: str
    snippet: str = Field(description="The tag a site adds to its pages for a visitor chat.")
    page_url: str


class BotOut(OutModel):
    """A bot; its auth token is never returned."""

    id: str
    name: str
    account_sid: str
    phone: str
    base_url: str | None
    webhook_url: str | None
    reply_timeout: Number
    rules: list[Rule]
    default_reply: str | None
    help_text: str | None
    inbound_webhook_url: str = Field(description="Configure it on the Twilio number.")
    webchat: WebchatLinks
    created_at: Timestamp
    updated_at: Timestamp


class BotList(OutModel):
    count: int
    items: list[BotOut]


class LastMessage(OutModel):
    direction: str
    text: str | None
    at: Timestamp


class ConversationOut(OutModel):
    id: str
    bot_id: str
    channel: str
    address: str
    status: str
    unread_count: int
    last_message: LastMessage | None
    created_at: Timestamp
    closed_at: Timestamp | None


class ConversationList(OutModel):
    count: int
    items: list[ConversationOut]


class ConversationMessage(OutModel):
    """One message of a conversation; ``id`` is null until the web chat has posted it."""

    id: int | None
    direction: str
    text: str
    media: list[str]
    via: str | None
    message_id: str | None
    provider_message_id: str | None
    status: str
    # Rich web chat content and the widget's own id of a visitor's text, when there are.
    image_url: str | None = None
    button_url: str | None = None
    button_text: str | None = None
    client_id: str | None = None
    created_at: Timestamp


class ConversationDetail(ConversationOut):
    messages: list[ConversationMessage]


class SuppressionOut(OutModel):
    id: str
    channel: str
    from_: str = Field(alias="from")
    to: str
    source: str
    created_at: Timestamp


class SuppressionList(OutModel):
    count: int
    items: list[SuppressionOut]


class VisitorOut(OutModel):
    """What the web chat widget needs to chat as one visitor."""

    bot_id: str
    visitor_id: str
    token: str


class VisitorSnippet(VisitorOut):
    script_url: str
    snippet: str = Field(description="The widget's tag, signed in as this visitor.")
