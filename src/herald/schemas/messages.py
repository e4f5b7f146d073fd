"""The messages API request bodies, wire-compatible with TWIN's Messaging API v1.

Unknown fields are refused (``extra="forbid"``) so a typo or a feature Herald does not have
yet is a clear 422, never silently ignored. Every request model takes each value as the JSON
type it is: numbers, booleans and strings are never converted into one another (the
``Strict*`` types; a plain ``str`` already refuses the others), so ``{"rateLimit": true}`` is
a 422 ``wrong_type``, not one message a second. An integer is still a valid float. No text
anywhere in a request, keys included, may hold a NUL character (422 ``invalid_character``,
see :mod:`herald.schemas.text`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from herald.schemas.text import INVALID_CHARACTER, NUL_ADVICE, nul_at

Scalar = str | int | float | bool | None


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        # Checked on the raw input, once for the whole model: its free-form parts (channels,
        # variables, settings) are text Herald stores too.
        where = nul_at(data)
        if where is not None:
            raise PydanticCustomError(INVALID_CHARACTER, NUL_ADVICE, {"field": where})
        return data


class DestinationIn(WireModel):
    phone: str | None = None
    email: str | None = None
    client_id: str | None = Field(default=None, alias="clientId")
    external_id: str | None = Field(default=None, alias="externalId")
    messenger_user_id: str | None = Field(default=None, alias="messengerUserId")
    push_registration_id: str | None = Field(default=None, alias="pushRegistrationId")
    platform: str | None = None
    variables: dict[str, Scalar] | None = None

    @field_validator("phone")
    @classmethod
    def _phone_is_text(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


class SmsChannelIn(WireModel):
    # Optional only when the message names a template that has SMS text.
    text: Annotated[str | None, Field(min_length=1)] = None
    from_: str | None = Field(default=None, alias="from")
    provider: str | None = None
    validity_period: StrictInt | None = Field(default=None, alias="validityPeriod")
    required: StrictBool | None = None


class RichChannelIn(WireModel):
    """E-mail, Telegram and WhatsApp content and delivery settings (TWIN's channel object)."""

    text: str | None = None
    from_: str | None = Field(default=None, alias="from")
    provider: str | None = None
    validity_period: StrictInt | None = Field(default=None, alias="validityPeriod")
    required: StrictBool | None = None
    subject: str | None = None
    html: str | None = None
    from_name: str | None = Field(default=None, alias="fromName", max_length=200)
    # E-mail: the From address and Reply-To (the envelope stays the sender's).
    from_email: str | None = Field(default=None, alias="fromEmail", max_length=320)
    reply_to: str | None = Field(default=None, alias="replyTo", max_length=320)
    image_url: str | None = Field(default=None, alias="imageUrl")
    button_url: str | None = Field(default=None, alias="buttonUrl")
    button_text: str | None = Field(default=None, alias="buttonText")
    # WhatsApp's approved template, used outside the 24-hour window (Twilio Content API).
    content_sid: str | None = Field(
        default=None, alias="contentSid", pattern=r"^HX[0-9a-fA-F]{32}$"
    )
    template_name: str | None = Field(default=None, alias="templateName")  # Meta's template
    language: str | None = Field(default=None, max_length=20)
    template_data: dict[str, Scalar] | None = Field(default=None, alias="templateData")
    template_namespace: str | None = Field(default=None, alias="templateNamespace", max_length=100)
    # A file sent by link (image, video or document), and the name a document is shown under.
    media_url: str | None = Field(
        default=None, alias="mediaUrl", max_length=2000, pattern=r"^https?://\S+$"
    )
    document_filename: str | None = Field(default=None, alias="documentFilename", max_length=240)


class ChatChannelIn(WireModel):
    """TWIN's ``chat`` channel: a session with a bot on the person's messenger."""

    chat_id: str | None = Field(default=None, alias="chatId", max_length=36)
    bot_id: str | None = Field(default=None, alias="botId", max_length=36)
    messenger_type: str | None = Field(default=None, alias="messengerType", max_length=30)
    chat_session_name: str | None = Field(default=None, alias="chatSessionName", max_length=200)
    continue_last_or_start_new_session: StrictBool | None = Field(
        default=None, alias="continueLastOrStartNewSession"
    )
    provider: str | None = None
    validity_period: StrictInt | None = Field(default=None, alias="validityPeriod")
    required: StrictBool | None = None
    text: str | None = None
    image_url: str | None = Field(default=None, alias="imageUrl")
    button_url: str | None = Field(default=None, alias="buttonUrl")
    button_text: str | None = Field(default=None, alias="buttonText")


class MessageIn(WireModel):
    destinations: Annotated[list[DestinationIn], Field(min_length=1, max_length=1000)]
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, alias="callbackUrl")
    callback_data: str | None = Field(default=None, alias="callbackData")
    group_id: str | None = Field(default=None, alias="groupId", max_length=100)
    template_id: str | None = Field(default=None, alias="templateId")
    use_short_links: StrictBool | None = Field(default=None, alias="useShortLinks")
    validate_: StrictBool | None = Field(default=None, alias="validate")
    allowed_time_ranges: list[list[str]] | None = Field(default=None, alias="allowedTimeRanges")
    send_at: Any = Field(default=None, alias="sendAt")
    # Herald's additions: the recipient's IANA zone for allowedTimeRanges, and template
    # variables shared by every destination (each destination's own override them).
    timezone: str | None = Field(default=None, max_length=64)
    variables: dict[str, Scalar] | None = None


# MessageIn's fields again, as request-wide defaults (and CreateTaskIn's alike): declared
# in place, since the order is the wire's and the Idempotency-Key fingerprint's.
class CreateMessagesIn(WireModel):
    company_id: str | StrictInt | None = Field(default=None, alias="companyId")
    task_id: str | None = Field(default=None, alias="taskId", max_length=100)
    bulk_id: str | None = Field(default=None, alias="bulkId", max_length=36)
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=1000)]


IdList = str | list[str] | None


class CancelMessagesIn(WireModel):
    id: IdList = None
    bulk_id: IdList = Field(default=None, alias="bulkId")
    group_id: IdList = Field(default=None, alias="groupId")
    flow_id: IdList = Field(default=None, alias="flowId")
    task_id: IdList = Field(default=None, alias="taskId")


def id_list(value: IdList) -> list[str]:
    """TWIN sends id filters as a comma-separated string or as an array: accept both."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip() for item in items if item and item.strip()]


def pydantic_code(error_type: str) -> str:
    """A stable machine code for one of pydantic's error types."""
    if error_type.endswith("_type"):  # string_type, int_type, bool_type, list_type, ...
        return "wrong_type"
    return {
        "missing": "missing_field",
        "extra_forbidden": "unknown_field",
        "json_invalid": "malformed_json",
        INVALID_CHARACTER: INVALID_CHARACTER,
    }.get(error_type, "invalid_field")
