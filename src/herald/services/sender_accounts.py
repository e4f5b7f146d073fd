"""What a sender account is: the providers of each channel, the fields each one needs, their
checks, and the credentials sealed in the vault (the sender resource: ``senders.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from herald.channels.base import SenderAccount
from herald.channels.email import parse_smtp_url
from herald.channels.telegram import DEFAULT_BASE_URL as TELEGRAM_BASE_URL
from herald.channels.twilio import DEFAULT_BASE_URL
from herald.channels.whatsapp_meta import DEFAULT_BASE_URL as META_BASE_URL
from herald.domain.email import validate_email_address
from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.urls import UrlPolicy
from herald.errors import ValidationFailed
from herald.services.problems import Problems
from herald.services.url_checks import host_problem, url_problem
from herald.services.vault import Vault
from herald.store.senders import Sender

PROVIDERS = {
    "sms": ("twilio", "sandbox"),
    "email": ("smtp",),
    "telegram": ("telegram",),
    "whatsapp": ("twilio-whatsapp", "meta-whatsapp"),
}
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
# Twilio alphanumeric sender IDs: up to 11 letters, digits and spaces, at least one letter.
_ALPHANUMERIC_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


@dataclass(frozen=True, slots=True)
class NewSender:
    """A sender as asked for: identity, settings and secrets, checked by ``validated``."""

    # Fields like channels.base.SenderAccount's (an adapter's view, secrets as one mapping)
    # and plans.Step's: alike in shape only.

    channel: str
    provider: str
    from_address: str
    account_sid: str | None = None
    auth_token: str | None = None
    base_url: str | None = None
    rate_limit: float | None = None
    default: bool | None = None
    smart_encoding: bool = False
    # Other channels' secrets: SMTP username/password, a Telegram bot token.
    username: str | None = None
    password: str | None = None
    bot_token: str | None = None
    # Meta's WhatsApp Cloud API: the phone number id goes in account_sid's place.
    access_token: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None


# The account fields each provider uses (wire names); any other given is refused, not stored
# unused. Meta's phoneNumberId is kept where Twilio's accountSid is.
ACCOUNT_FIELDS: dict[str, tuple[str, ...]] = {
    "twilio": ("accountSid", "authToken"),
    "twilio-whatsapp": ("accountSid", "authToken"),
    "sandbox": (),
    "smtp": ("username", "password"),
    "telegram": ("botToken",),
    "meta-whatsapp": ("phoneNumberId", "accessToken", "appSecret", "verifyToken"),
}

# NewSender's secret fields, under their keys in a sender's encrypted credentials.
SECRET_KEYS = {
    "auth_token": "authToken",
    "username": "username",
    "password": "password",
    "bot_token": "botToken",
    "access_token": "accessToken",
    "app_secret": "appSecret",
    "verify_token": "verifyToken",
}


def credentials_of(new: NewSender) -> dict[str, str]:
    """The secrets given, under their keys in the sealed credentials."""
    secrets = {key: getattr(new, field) for field, key in SECRET_KEYS.items()}
    return {key: value for key, value in secrets.items() if value}


def invalid(message: str, field: str, code: str = "invalid_sender") -> ValidationFailed:
    """A 422 about one field of a sender."""
    return ValidationFailed(message, code=code, details={"field": field})


def _checked_from(channel: str, from_address: str) -> str:
    if channel == "email":
        try:
            return validate_email_address(from_address)
        except ValueError as e:
            raise invalid(f"'from' must be the sender's e-mail address: {e}", "from") from e
    if channel == "telegram":
        if not from_address:
            raise invalid("'from' must name the bot, e.g. @herald_bot.", "from")
        return from_address
    if channel == "sms" and _ALPHANUMERIC_ID.match(from_address) and not from_address.isdigit():
        return from_address
    try:
        return to_e164(from_address)
    except InvalidPhone as e:
        what = (
            "" if channel == "whatsapp" else " or an alphanumeric sender ID of up to 11 characters"
        )
        raise invalid(
            f"'from' must be a phone number in E.164 (+14155550123){what}: {e}", "from"
        ) from e


def _checked_base_url(provider: str, base_url: str | None, urls: UrlPolicy) -> str | None:
    if provider == "smtp":
        if not base_url:
            raise invalid(
                "'baseUrl' is required for e-mail: smtp://host:587 (STARTTLS) or smtps://host:465.",
                "baseUrl",
            )
        try:
            endpoint = parse_smtp_url(base_url)
        except ValueError as e:
            raise invalid(f"'baseUrl' is not a usable SMTP URL: {e}", "baseUrl") from e
        if (refused := host_problem(urls, endpoint.host, "baseUrl")) is not None:
            raise invalid(refused, "baseUrl", "url_not_allowed")
        return base_url
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid("'baseUrl' must be an absolute http(s) URL.", "baseUrl")
        if (refused := url_problem(urls, base_url, "baseUrl")) is not None:
            raise invalid(refused, "baseUrl", "url_not_allowed")
    if provider in ("twilio", "twilio-whatsapp"):
        return base_url or DEFAULT_BASE_URL
    if provider == "telegram":
        return base_url or TELEGRAM_BASE_URL
    if provider == "meta-whatsapp":
        return base_url or META_BASE_URL
    return base_url


def validated(new: NewSender, urls: UrlPolicy) -> NewSender:
    """``new`` normalized (lower-case names, E.164 from, default base URL), or every problem."""
    channel = new.channel.lower()
    provider = new.provider.lower()
    if channel not in PROVIDERS:
        raise invalid(
            f"Channel {new.channel!r} is not supported; use one of: {', '.join(PROVIDERS)}.",
            "channel",
        )
    if provider not in PROVIDERS[channel]:
        allowed = ", ".join(PROVIDERS[channel])
        raise invalid(
            f"Provider {new.provider!r} is not supported for {channel}; use {allowed}.", "provider"
        )
    faults = Problems()  # every problem of the sender at once

    def fault(message: str, field: str, code: str = "invalid_sender") -> None:
        faults.add(field, message, code)

    from_address, base_url = "", new.base_url
    try:
        from_address = _checked_from(channel, new.from_address.strip())
    except ValidationFailed as e:
        fault(e.message, "from")
    try:
        base_url = _checked_base_url(provider, new.base_url, urls)
    except ValidationFailed as e:
        fault(e.message, "baseUrl", e.code)
    if new.rate_limit is not None and not (0 < new.rate_limit <= 10_000):
        fault("'rateLimit' must be more than 0 and at most 10000 messages per second.", "rateLimit")
    given = {
        "phoneNumberId" if provider == "meta-whatsapp" else "accountSid": new.account_sid,
        **{key: getattr(new, field) for field, key in SECRET_KEYS.items()},
    }
    for key, value in given.items():
        if value and key not in ACCOUNT_FIELDS[provider]:
            fault(f"'{key}' is not used by {provider} senders; leave it out.", key)
    if provider in ("twilio", "twilio-whatsapp"):
        if not new.account_sid:
            fault(
                "'accountSid' is required for Twilio (AC followed by 32 hex digits).", "accountSid"
            )
        elif not _ACCOUNT_SID.match(new.account_sid):
            fault(
                "'accountSid' must be a Twilio Account SID: AC followed by 32 hex digits.",
                "accountSid",
            )
        if not new.auth_token:
            fault("'authToken' is required for Twilio.", "authToken")
    if provider == "meta-whatsapp":
        if not new.account_sid or not new.account_sid.isdigit():
            fault(
                "'phoneNumberId' (digits, from Meta's WhatsApp Manager) is required.",
                "phoneNumberId",
            )
        for value, field in (
            (new.access_token, "accessToken"),
            (new.app_secret, "appSecret"),
            (new.verify_token, "verifyToken"),
        ):
            if not value:
                fault(f"'{field}' is required for Meta's WhatsApp Cloud API.", field)
    if provider == "telegram" and not new.bot_token:
        fault("'botToken' is required for Telegram (from @BotFather).", "botToken")
    if faults.items:
        raise ValidationFailed(
            faults.summary(with_path=False),  # each sentence names its field
            code=faults.items[0]["code"] if len(faults.items) == 1 else "invalid_sender",
            details={"field": faults.items[0]["path"], "errors": faults.items},
        )
    return replace(
        new, channel=channel, provider=provider, from_address=from_address, base_url=base_url
    )


def as_new_sender(sender: Sender, vault: Vault) -> NewSender:
    """A stored sender as it would be asked for, its secrets unsealed: the base of a change."""
    secrets = vault.decrypt_json(sender.credentials_encrypted)
    return NewSender(
        channel=sender.channel,
        provider=sender.provider,
        from_address=sender.from_address,
        account_sid=sender.account_id,
        base_url=sender.base_url,
        rate_limit=sender.rate_limit,
        default=sender.is_default,
        smart_encoding=sender.smart_encoding,
        # Only what the provider uses: older versions stored any secret they were given.
        **{
            field: secrets.get(key)
            for field, key in SECRET_KEYS.items()
            if key in ACCOUNT_FIELDS[sender.provider]
        },
    )


def account_of(sender: Sender, vault: Vault) -> SenderAccount:
    """A sender's settings with its credentials decrypted, for an adapter."""
    return SenderAccount(
        id=sender.id,
        provider=sender.provider,
        from_address=sender.from_address,
        account_id=sender.account_id,
        # Herald's own channels (the web chat) have no secrets.
        credentials=(
            vault.decrypt_json(sender.credentials_encrypted) if sender.credentials_encrypted else {}
        ),
        base_url=sender.base_url,
    )
