"""E-mail over SMTP with aiosmtplib: multipart text + HTML, our own Message-ID.

The sender's ``base_url`` is an SMTP URL:

- ``smtp://host[:port]``: port 587 by default, STARTTLS required. ``?starttls=opportunistic``
  upgrades only when the server offers it; ``?starttls=off`` stays in plain text (a local
  relay on port 25).
- ``smtps://host[:port]``: implicit TLS, port 465 by default.
- ``?cafile=/path/ca.pem`` trusts that CA (an internal relay with its own CA).
- ``?verify=false`` skips certificate verification. It exists for self-signed test servers:
  the connection stays encrypted but the server is not authenticated, so anyone on the path
  could read the mail and the password. Prefer ``cafile``.

Credentials (all optional): ``username`` and ``password`` for SMTP AUTH, ``fromName`` for the
display name of ``From``. ``from_address`` is both the envelope sender and the ``From``,
unless the message names its own author (TWIN's ``fromEmail``, ``fromName``): then that is the
``From`` and the envelope stays ``from_address``. TWIN's ``replyTo`` becomes ``Reply-To``.

SMTP has no delivery report: a 250 after DATA is all we learn, so the receipt's status is
``accepted`` and Herald counts acceptance as delivered. One connection is opened per message;
e-mail volumes rarely make pooling worth its failure modes.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import html
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import aiosmtplib

# The same list of interface types as every other adapter's: names, not logic.
from herald.channels.base import (
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    Receipt,
    SenderAccount,
    TransientError,
    Unlisted,
)
from herald.channels.egress import TargetNotAllowed, open_checked_socket
from herald.domain.email import validate_email_address
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy

DEFAULT_TIMEOUT_SECONDS = 30.0
SUBJECT_FALLBACK_CHARS = 60
# How long to wait for a closed connection to finish closing (TLS close_notify): 2 s at most.
_CLOSE_POLLS = 200
_CLOSE_POLL_SECONDS = 0.01

# CRLF line endings for the wire. cte_type 7bit makes non-ASCII bodies go out as
# quoted-printable or base64, which every server takes, instead of 8bit (needs 8BITMIME).
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINK_SCHEMES = ("http", "https", "mailto", "tel")
_IMAGE_SCHEMES = ("http", "https")
_BUTTON_STYLE = (
    "display:inline-block;padding:12px 24px;background-color:#1a73e8;color:#ffffff;"
    "text-decoration:none;border-radius:4px;font-weight:bold;font-family:sans-serif"
)


@dataclass(frozen=True, slots=True)
class SmtpEndpoint:
    """Where and how to connect, parsed from a sender's SMTP URL."""

    host: str
    port: int
    implicit_tls: bool
    # True: STARTTLS required; None: if the server offers it; False: never.
    starttls: bool | None
    verify: bool
    cafile: str | None


def parse_smtp_url(url: str) -> SmtpEndpoint:
    """Parse ``smtp://`` / ``smtps://`` URLs; raise ValueError with a sentence if invalid."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("The SMTP URL must start with smtp:// or smtps://.")
    if not parts.hostname:
        raise ValueError("The SMTP URL has no host.")
    if parts.username or parts.password:
        raise ValueError("Put SMTP credentials in username/password, not in the URL.")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"The SMTP URL has an invalid port: {e}") from e
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "verify", "cafile"}
    if unknown:
        raise ValueError(f"Unknown SMTP URL option(s): {', '.join(sorted(unknown))}.")
    implicit = parts.scheme == "smtps"
    starttls_modes: dict[str, bool | None] = {"required": True, "opportunistic": None, "off": False}
    mode = query.get("starttls", "required").lower()
    if mode not in starttls_modes:
        raise ValueError("starttls must be one of: required, opportunistic, off.")
    if implicit and "starttls" in query:
        raise ValueError("smtps:// is already TLS; starttls does not apply.")
    verify_value = query.get("verify", "true").lower()
    if verify_value not in ("true", "false"):
        raise ValueError("verify must be true or false.")
    return SmtpEndpoint(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls=False if implicit else starttls_modes[mode],
        verify=verify_value == "true",
        cafile=query.get("cafile") or None,
    )


def _checked_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    if urlsplit(url).scheme.lower() not in schemes or _CONTROL.search(url):
        raise PermanentError("invalid_url", f"The {what} URL must be {' or '.join(schemes)}.")
    return url


def _header_text(value: str, code: str, what: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        # A line break here would start a new header: refuse rather than guess.
        raise PermanentError(code, f"The {what} must be a single line.")
    return value


def _subject(message: OutboundMessage) -> str:
    if message.subject is not None and message.subject.strip():
        return _header_text(message.subject, "invalid_subject", "subject")
    return " ".join(message.body.split())[:SUBJECT_FALLBACK_CHARS].rstrip()


def render_text(message: OutboundMessage) -> str:
    """The text/plain part: the body, plus the button's link so plain-text readers get it."""
    if message.button_url and message.button_text:
        return f"{message.body}\n\n{message.button_text}: {message.button_url}\n"
    if message.button_url:
        return f"{message.body}\n\n{message.button_url}\n"
    return message.body


def render_html(message: OutboundMessage) -> str:
    """The text/html part for a message without template HTML: paragraphs, image, button."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n[ \t]*\n", message.body.strip()):
        if paragraph.strip():
            lines = (html.escape(line) for line in paragraph.splitlines())
            blocks.append(f"<p>{'<br>'.join(lines)}</p>")
    button_url = (
        _checked_url(message.button_url, _LINK_SCHEMES, "button") if message.button_url else None
    )
    if message.image_url:
        src = html.escape(_checked_url(message.image_url, _IMAGE_SCHEMES, "image"))
        alt = html.escape(message.subject or message.button_text or "Image")
        image = f'<img src="{src}" alt="{alt}" style="max-width:100%;height:auto;border:0">'
        if button_url:
            # The picture leads where the button does: people click pictures.
            image = f'<a href="{html.escape(button_url)}">{image}</a>'
        blocks.append(f"<p>{image}</p>")
    if button_url:
        label = html.escape(message.button_text or button_url)
        blocks.append(
            f'<p><a href="{html.escape(button_url)}" style="{_BUTTON_STYLE}">{label}</a></p>'
        )
    body = "\n".join(blocks)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
        f'<body style="font-family:sans-serif;line-height:1.5">\n{body}\n</body></html>\n'
    )


def _addresses(account: SenderAccount, message: OutboundMessage) -> tuple[str, str]:
    try:
        to = validate_email_address(message.to)
    except ValueError as e:
        raise PermanentError("invalid_email", str(e)) from e
    try:
        sender = validate_email_address(account.from_address)
    except ValueError as e:
        raise PermanentError("invalid_sender", f"The sender's from address: {e}") from e
    return sender, to


def _author(address: str, what: str) -> str:
    try:
        return validate_email_address(address)
    except ValueError as e:
        raise PermanentError("invalid_email", f"The {what} address: {e}") from e


def _compose(
    account: SenderAccount, message: OutboundMessage, sender: str, to: str, now: datetime
) -> EmailMessage:
    # The message's own author (TWIN's fromEmail/fromName) shows in From; the envelope stays
    # the sender's, the address the SMTP server lets this account send from.
    name = (
        message.from_name
        if message.from_name is not None
        else account.credentials.get("fromName", "")
    )
    from_name = _header_text(name, "invalid_sender", "fromName")
    author = _author(message.from_email, "fromEmail") if message.from_email else sender
    mail = EmailMessage(policy=_POLICY)
    try:
        mail["Subject"] = _subject(message)
        mail["From"] = Address(display_name=from_name, addr_spec=author)
        mail["To"] = Address(addr_spec=to)
        if message.reply_to:
            mail["Reply-To"] = Address(addr_spec=_author(message.reply_to, "replyTo"))
    except (ValueError, HeaderParseError) as e:
        raise PermanentError("invalid_email", f"Could not build the message headers: {e}") from e
    mail["Date"] = email.utils.format_datetime(now)
    mail["Message-ID"] = email.utils.make_msgid(domain=sender.partition("@")[2])
    mail.set_content(render_text(message))
    mail.add_alternative(
        message.html if message.html is not None else render_html(message), subtype="html"
    )
    for part in mail.iter_parts():
        # add_alternative gives the new part a MIME-Version of its own; only the top needs one.
        del part["MIME-Version"]
    return mail


def build_message(
    account: SenderAccount, message: OutboundMessage, *, now: datetime | None = None
) -> EmailMessage:
    """The MIME message for ``message``; PermanentError if an address or header is unsafe."""
    sender, to = _addresses(account, message)
    return _compose(account, message, sender, to, now or datetime.now(UTC))


def _from_reply(code: int, text: str) -> ProviderError:
    if not 200 <= code < 600:
        # aiosmtplib's -1: the server said something that is not SMTP (another kind of
        # service behind the URL). Its words go nowhere a tenant reads them.
        return PermanentError(
            "smtp_not_smtp", "The server at the SMTP URL answered with something that is not SMTP."
        )
    kind: type[ProviderError] = TransientError if 400 <= code < 500 else PermanentError
    return kind(f"smtp_{code}", text or f"SMTP error {code}")


class SmtpEmail(Unlisted):
    """The SMTP adapter: connect, (STARTTLS), AUTH, MAIL, RCPT, DATA, QUIT per message.

    Unlisted: SMTP has no way to ask a server what it accepted earlier. Nothing to close:
    each message uses its own connection.
    """

    name = "smtp"

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, urls: UrlPolicy = PUBLIC_ONLY
    ) -> None:
        self._timeout = timeout
        # The SMTP host is the tenant's choice: connect only where this allows.
        self._urls = urls

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        """Hand the message to the SMTP server; acceptance (250 after DATA) is the receipt."""
        if not account.base_url:
            raise PermanentError("smtp_config_invalid", "The sender has no SMTP URL.")
        try:
            endpoint = parse_smtp_url(account.base_url)
        except ValueError as e:
            raise PermanentError("smtp_config_invalid", str(e)) from e
        sender, to = _addresses(account, message)
        now = datetime.now(UTC)
        mail = _compose(account, message, sender, to, now)
        message_id = str(mail["Message-ID"])
        await self._deliver(endpoint, account, sender, to, mail.as_bytes(policy=_POLICY))
        return Receipt(provider_message_id=message_id, provider_status="accepted", created_at=now)

    async def _connect(self, endpoint: SmtpEndpoint) -> socket.socket:
        try:
            async with asyncio.timeout(self._timeout):
                return await open_checked_socket(self._urls, endpoint.host, endpoint.port)
        except TargetNotAllowed as e:
            raise PermanentError("url_not_allowed", str(e)) from e
        except OSError as e:  # refused, unreachable, unknown name, timed out
            raise self._lost(e, data_started=False) from e

    async def _deliver(
        self, endpoint: SmtpEndpoint, account: SenderAccount, sender: str, to: str, data: bytes
    ) -> None:
        # Connected here, to the address the guard checked; aiosmtplib keeps the host name for
        # TLS certificate checks and SNI.
        sock = await self._connect(endpoint)
        try:
            smtp = aiosmtplib.SMTP(
                hostname=endpoint.host,
                sock=sock,
                use_tls=endpoint.implicit_tls,
                start_tls=endpoint.starttls,
                validate_certs=endpoint.verify,
                cert_bundle=endpoint.cafile,
                timeout=self._timeout,
            )
        except BaseException:
            sock.close()
            raise
        username = account.credentials.get("username")
        data_started = False
        try:
            await smtp.connect()
            if username:
                await smtp.login(username, account.credentials.get("password", ""))
            await smtp.mail(sender)
            await smtp.rcpt(to)
            data_started = True
            await smtp.data(data)
        except aiosmtplib.SMTPAuthenticationError as e:
            if 400 <= e.code < 500:
                raise _from_reply(e.code, e.message) from e
            raise PermanentError(
                "smtp_auth_failed", e.message or "The SMTP server refused the credentials."
            ) from e
        except aiosmtplib.SMTPResponseException as e:
            # Covers refusals of the greeting, EHLO, MAIL, RCPT and DATA: each is a definite
            # answer, even after DATA started.
            raise _from_reply(e.code, e.message) from e
        except aiosmtplib.SMTPRecipientsRefused as e:
            first = e.recipients[0]
            raise _from_reply(first.code, first.message) from e
        except (ssl.SSLError, aiosmtplib.SMTPConnectError) as e:
            if isinstance(e, ssl.SSLError) or isinstance(e.__cause__, ssl.SSLError):
                # A certificate or protocol mismatch does not fix itself on retry.
                raise PermanentError(
                    "smtp_tls_failed", f"TLS with the SMTP server failed: {e}"
                ) from e
            raise self._lost(e, data_started) from e
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as e:
            raise self._lost(e, data_started) from e
        except aiosmtplib.SMTPException as e:
            # STARTTLS or AUTH required by the sender's settings but not offered.
            raise PermanentError("smtp_not_supported", e.message) from e
        finally:
            await self._quit(smtp)

    @staticmethod
    def _lost(e: Exception, data_started: bool) -> ProviderError:
        detail = str(e) or type(e).__name__
        if not data_started:
            # Nothing was handed over yet: sending again cannot duplicate the message.
            return TransientError("smtp_unreachable", f"Could not reach the SMTP server: {detail}")
        if isinstance(e, TimeoutError):
            return OutcomeUnknown(
                "smtp_timeout",
                f"The SMTP server did not answer DATA in time; the message may have been sent: "
                f"{detail}",
            )
        return OutcomeUnknown(
            "smtp_connection_lost",
            f"The SMTP connection broke during DATA; the message may have been sent: {detail}",
        )

    @staticmethod
    async def _quit(smtp: aiosmtplib.SMTP) -> None:
        protocol = smtp.protocol
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                # The message's fate was settled before QUIT; a rude server changes nothing.
                smtp.close()
        if protocol is None:
            return
        # close() only starts closing: over TLS the socket stays open until both sides have
        # sent close_notify. Wait for it (bounded), so no socket outlives the send.
        for _ in range(_CLOSE_POLLS):
            if protocol.transport is None:
                return
            await asyncio.sleep(_CLOSE_POLL_SECONDS)
        transport = protocol.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()
