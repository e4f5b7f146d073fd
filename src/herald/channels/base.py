"""The one interface every channel adapter implements, and the errors adapters raise.

ProviderError                 the provider or the road to it said no
├── TransientError            retry later (429, 5xx, connection refused before sending)
├── PermanentError            final: keep the provider's code, message and more_info
└── OutcomeUnknown            the request may have reached the provider (read timeout,
                              dropped connection): never resend blindly, reconcile first
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SenderAccount:
    """A sender's decrypted settings, as an adapter needs them."""

    id: str
    provider: str
    from_address: str
    account_id: str | None
    credentials: dict[str, str]
    base_url: str | None


@dataclass(frozen=True, slots=True)
class ProviderTemplate:
    """A template approved at the provider (WhatsApp), sent by reference with its variables."""

    name: str | None = None  # Meta Cloud API template name
    language: str | None = None
    content_sid: str | None = None  # Twilio Content API (HX...)
    namespace: str | None = None  # TWIN's templateNamespace (Meta's template namespace)
    variables: dict[str, str] = field(default_factory=dict)


# The dataclasses below are field lists, alike in shape only (optional values defaulting
# to None) with each other and with other plain records in Herald.
@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message for one recipient on one channel, already rendered."""

    to: str
    body: str
    status_callback: str | None = None
    validity_seconds: int | None = None
    subject: str | None = None
    html: str | None = None
    image_url: str | None = None
    button_url: str | None = None
    button_text: str | None = None
    template: ProviderTemplate | None = None
    # TWIN's channel fields: e-mail's author and answer address (the envelope stays the
    # sender's), and a WhatsApp file sent by link with the name the person sees.
    from_email: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    media_url: str | None = None
    document_filename: str | None = None
    # Herald's own message id: providers that keep a client reference (the web chat) use it
    # to find an attempt that may have been made before a crash.
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider told us about a message: on accepting it, or when read back."""

    provider_message_id: str
    provider_status: str
    num_segments: int | None = None
    price: str | None = None
    price_unit: str | None = None
    created_at: datetime | None = None
    # The provider's asynchronous error, on a message read back as failed or undelivered.
    error_code: str | None = None
    error_message: str | None = None
    # Statuses an in-process provider (the sandbox) already knows, applied in order at once.
    reports: tuple[str, ...] = field(default=())


class ProviderError(Exception):
    """A provider refused a message, or could not be reached."""

    # Keyword-only details, a signature shaped like others in Herald by coincidence.
    def __init__(
        self,
        code: str,
        message: str,
        *,
        more_info: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.more_info = more_info
        self.http_status = http_status
        self.retry_after = retry_after


class TransientError(ProviderError):
    """Worth retrying: the provider did not take the message this time."""


class PermanentError(ProviderError):
    """Final: retrying the same request gives the same answer."""


class OutcomeUnknown(ProviderError):
    """The request may or may not have reached the provider."""


class Unlisted:
    """Base of adapters whose provider cannot be asked what it was sent before.

    ``find_sent`` finds nothing there; each adapter says why its provider cannot tell.
    """

    async def find_sent(
        self, account: SenderAccount, message: OutboundMessage, since: datetime
    ) -> list[Receipt]:
        """Always empty: the provider keeps no list of sent messages that can be read."""
        return []

    async def aclose(self) -> None:
        """Nothing to close unless an adapter holds a client."""
        return None


class ChannelAdapter(Protocol):
    """One provider on one channel."""

    name: str

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        """Hand one message to the provider; raise a ProviderError subclass on failure."""
        ...

    async def find_sent(
        self, account: SenderAccount, message: OutboundMessage, since: datetime
    ) -> list[Receipt]:
        """Messages the provider holds that match ``message`` and were created after ``since``.

        Used after a crash to learn whether an attempt reached the provider before resending.
        """
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class FetchingAdapter(Protocol):
    """An adapter that can read a message back from its provider (price, final status)."""

    async def fetch(self, account: SenderAccount, provider_message_id: str) -> Receipt:
        """The provider's current view of one message."""
        ...
