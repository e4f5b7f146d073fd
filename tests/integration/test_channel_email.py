"""The SMTP adapter against a real SMTP server (aiosmtpd) on 127.0.0.1: TLS modes, AUTH,
the MIME it builds, and how each SMTP answer maps to Transient / Permanent / OutcomeUnknown."""

from __future__ import annotations

import email.utils
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from herald.channels.base import (
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    SenderAccount,
    TransientError,
)
from herald.channels.email import SmtpEmail, build_message, parse_smtp_url
from tests.fakes.smtp import FakeSmtp, Stage
from tests.servers import LOOPBACK_POLICY, free_port

USER = "mailer"
PASSWORD = "s3cret"
FROM = "notify@herald.example"


def account(base_url: str | None, **credentials: str) -> SenderAccount:
    return SenderAccount(
        id="sender-1",
        provider="smtp",
        from_address=FROM,
        account_id=None,
        credentials=credentials,
        base_url=base_url,
    )


def authed(fake: FakeSmtp, base_url: str | None = None) -> SenderAccount:
    return account(base_url or fake.base_url, username=USER, password=PASSWORD, fromName="Herald")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeSmtp]]:
    fakes = {
        "plain": FakeSmtp("plain"),
        "plain-auth": FakeSmtp("plain", username=USER, password=PASSWORD),
        "starttls": FakeSmtp("starttls", username=USER, password=PASSWORD),
        "tls": FakeSmtp("tls", username=USER, password=PASSWORD),
    }
    started: list[FakeSmtp] = []
    try:
        for fake in fakes.values():
            fake.start()
            started.append(fake)
        yield fakes
    finally:
        for fake in started:
            fake.stop()


@pytest.fixture
def plain(servers: dict[str, FakeSmtp]) -> FakeSmtp:
    servers["plain"].reset()
    return servers["plain"]


@pytest.fixture
def plain_auth(servers: dict[str, FakeSmtp]) -> FakeSmtp:
    servers["plain-auth"].reset()
    return servers["plain-auth"]


@pytest.fixture
def starttls(servers: dict[str, FakeSmtp]) -> FakeSmtp:
    servers["starttls"].reset()
    return servers["starttls"]


@pytest.fixture
def implicit_tls(servers: dict[str, FakeSmtp]) -> FakeSmtp:
    servers["tls"].reset()
    return servers["tls"]


@pytest.fixture
def smtp() -> SmtpEmail:
    return SmtpEmail(timeout=5.0, urls=LOOPBACK_POLICY)


def parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    # The wire uses CRLF; compare with what Herald was given.
    return (
        str(text.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


RICH = OutboundMessage(
    to="ann@example.org",
    body="Hello Ann <3\nYour order shipped.\n\nThanks & bye",
    subject="Your order",
    image_url="https://cdn.example.com/box.png?size=2&x=1",
    button_url="https://shop.example.com/track?id=42&lang=en",
    button_text="Track it",
)


# -- success over each transport ----------------------------------------------------------------


async def test_plain_multipart_with_image_button_and_our_message_id(
    plain: FakeSmtp, smtp: SmtpEmail
) -> None:
    receipt = await smtp.send(account(plain.base_url, fromName="Herald Ops"), RICH)

    assert receipt.provider_status == "accepted"
    [received] = plain.messages
    assert received.mail_from == FROM
    assert received.rcpt_tos == ("ann@example.org",)
    assert received.tls is False and received.login is None
    mail = received.message
    assert mail["Message-ID"] == receipt.provider_message_id
    assert receipt.provider_message_id.startswith("<")
    assert receipt.provider_message_id.endswith("@herald.example>")
    assert email.utils.parsedate_to_datetime(mail["Date"]).tzinfo is not None
    assert mail["Subject"] == "Your order"
    assert mail["From"] == "Herald Ops <notify@herald.example>"
    assert mail["To"] == "ann@example.org"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text, html = parts(mail)
    assert text.startswith(RICH.body)
    assert "Track it: https://shop.example.com/track?id=42&lang=en" in text
    assert "<p>Hello Ann &lt;3<br>Your order shipped.</p>" in html
    assert "<p>Thanks &amp; bye</p>" in html
    assert '<img src="https://cdn.example.com/box.png?size=2&amp;x=1" alt="Your order"' in html
    assert '<a href="https://shop.example.com/track?id=42&amp;lang=en" style="' in html
    assert ">Track it</a>" in html
    assert "display:inline-block" in html


async def test_starttls_with_auth(starttls: FakeSmtp, smtp: SmtpEmail) -> None:
    receipt = await smtp.send(authed(starttls), RICH)

    [received] = starttls.messages
    assert received.tls is True
    assert received.login == USER
    assert received.message["Message-ID"] == receipt.provider_message_id


async def test_starttls_verifies_certificates_against_a_given_ca(
    starttls: FakeSmtp, smtp: SmtpEmail
) -> None:
    await smtp.send(authed(starttls, starttls.base_url_with_ca), RICH)

    assert starttls.messages[0].tls is True


async def test_implicit_tls_with_auth(implicit_tls: FakeSmtp, smtp: SmtpEmail) -> None:
    await smtp.send(authed(implicit_tls), RICH)
    await smtp.send(authed(implicit_tls, implicit_tls.base_url_with_ca), RICH)

    assert [(m.tls, m.login) for m in implicit_tls.messages] == [(True, USER), (True, USER)]


async def test_auth_on_a_plain_port(plain_auth: FakeSmtp, smtp: SmtpEmail) -> None:
    await smtp.send(authed(plain_auth), RICH)

    assert plain_auth.messages[0].login == USER


async def test_opportunistic_starttls_falls_back_to_plain(plain: FakeSmtp, smtp: SmtpEmail) -> None:
    url = plain.base_url.replace("starttls=off", "starttls=opportunistic")
    await smtp.send(account(url), RICH)

    assert plain.messages[0].tls is False


async def test_template_html_is_sent_as_is(plain: FakeSmtp, smtp: SmtpEmail) -> None:
    html = "<html><body><h1>Hi {name}</h1><table><tr><td>x</td></tr></table></body></html>"
    message = OutboundMessage(
        to="ann@example.org",
        body="Hi Ann",
        html=html,
        button_url="https://ex.com",
        button_text="Go",
    )
    await smtp.send(account(plain.base_url), message)

    _, received_html = parts(plain.messages[0].message)
    assert received_html.strip() == html


async def test_subject_defaults_to_the_start_of_the_body(plain: FakeSmtp, smtp: SmtpEmail) -> None:
    body = "Your   verification\ncode is 123456. " + "It expires in ten minutes. " * 5
    await smtp.send(account(plain.base_url), OutboundMessage(to="ann@example.org", body=body))

    subject = plain.messages[0].message["Subject"]
    assert subject == " ".join(body.split())[:60].rstrip()
    assert len(subject) <= 60


async def test_unicode_and_leading_dots_survive(plain: FakeSmtp, smtp: SmtpEmail) -> None:
    body = "Привет, Аня! ¿Qué tal? 👋\n.\n..leading dots\n" + "ü" * 300
    message = OutboundMessage(to="anna@bücher.example", body=body, subject="Заказ №42 ✓")
    await smtp.send(account(plain.base_url, fromName="Геральд"), message)

    received = plain.messages[0]
    assert received.rcpt_tos == ("anna@xn--bcher-kva.example",)
    assert received.message["Subject"] == "Заказ №42 ✓"
    assert received.message["From"].addresses[0].display_name == "Геральд"
    text, _ = parts(received.message)
    assert text == body + "\n"
    # Sent 7-bit clean: no server needs 8BITMIME.
    assert received.data.isascii()


# -- refusals before anything is sent ----------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["Hi\r\nBcc: victim@example.net", "Hi\nX-Injected: 1", "Hi\rBcc: x@example.net"],
)
async def test_header_injection_in_subject_is_refused(
    plain: FakeSmtp, smtp: SmtpEmail, subject: str
) -> None:
    message = OutboundMessage(to="ann@example.org", body="x", subject=subject)
    with pytest.raises(PermanentError) as caught:
        await smtp.send(account(plain.base_url), message)

    assert caught.value.code == "invalid_subject"
    assert plain.messages == []


@pytest.mark.parametrize(
    "to",
    [
        "ann@example.org\r\nBcc: victim@example.net",
        "ann@example.org\nSubject: spoofed",
        "ann@example.org, victim@example.net",
        "Ann <ann@example.org>",
        "ann@@example.org",
        "ann@exa mple.org",
        "ann.example.org",
        "ann@example..org",
        "",
    ],
)
async def test_bad_or_injected_recipients_are_refused(
    plain: FakeSmtp, smtp: SmtpEmail, to: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await smtp.send(account(plain.base_url), OutboundMessage(to=to, body="x"))

    assert caught.value.code == "invalid_email"
    assert plain.messages == []


async def test_header_injection_in_from_name_is_refused(plain: FakeSmtp, smtp: SmtpEmail) -> None:
    with pytest.raises(PermanentError) as caught:
        await smtp.send(
            account(plain.base_url, fromName="Herald\r\nBcc: victim@example.net"),
            OutboundMessage(to="ann@example.org", body="x"),
        )
    assert caught.value.code == "invalid_sender"


async def test_javascript_button_is_refused(smtp: SmtpEmail) -> None:
    message = OutboundMessage(
        to="ann@example.org", body="x", button_url="javascript:alert(1)", button_text="Go"
    )
    with pytest.raises(PermanentError) as caught:
        build_message(account("smtp://127.0.0.1"), message)
    assert caught.value.code == "invalid_url"


@pytest.mark.parametrize(
    "base_url",
    [None, "http://127.0.0.1:25", "smtp://", "smtp://h?starttls=maybe", "smtp://h?tls=1"],
)
async def test_bad_smtp_url_is_a_configuration_error(smtp: SmtpEmail, base_url: str | None) -> None:
    with pytest.raises(PermanentError) as caught:
        await smtp.send(account(base_url), OutboundMessage(to="ann@example.org", body="x"))
    assert caught.value.code == "smtp_config_invalid"


def test_smtp_url_defaults() -> None:
    submission = parse_smtp_url("smtp://mail.example.com")
    assert (submission.port, submission.implicit_tls, submission.starttls) == (587, False, True)
    assert submission.verify is True
    implicit = parse_smtp_url("smtps://mail.example.com")
    assert (implicit.port, implicit.implicit_tls, implicit.starttls) == (465, True, False)
    relay = parse_smtp_url("smtp://localhost:25?starttls=off")
    assert (relay.port, relay.starttls) == (25, False)
    lab = parse_smtp_url("smtp://10.0.0.5:2525?starttls=opportunistic&verify=false")
    assert (lab.starttls, lab.verify) == (None, False)
    assert parse_smtp_url("smtps://h?cafile=/etc/ca.pem").cafile == "/etc/ca.pem"


# -- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "code", "kind"),
    [
        ("mail", 421, TransientError),
        ("mail", 451, TransientError),
        ("mail", 553, PermanentError),
        ("rcpt", 450, TransientError),
        ("rcpt", 451, TransientError),
        ("rcpt", 452, TransientError),
        ("rcpt", 550, PermanentError),
        ("rcpt", 552, PermanentError),
        ("data", 451, TransientError),
        ("data", 552, PermanentError),
        ("data", 554, PermanentError),
    ],
)
async def test_smtp_replies_map_by_class(
    plain: FakeSmtp, smtp: SmtpEmail, stage: Stage, code: int, kind: type[ProviderError]
) -> None:
    plain.reject_next(code, f"{code // 100}.7.1 Refused for testing", stage=stage)
    with pytest.raises(ProviderError) as caught:
        await smtp.send(account(plain.base_url), OutboundMessage(to="ann@example.org", body="x"))

    assert type(caught.value) is kind
    assert caught.value.code == f"smtp_{code}"
    assert caught.value.message == f"{code // 100}.7.1 Refused for testing"
    assert plain.messages == []
    # The refusal was for that message only: the next one goes through.
    await smtp.send(account(plain.base_url), OutboundMessage(to="ann@example.org", body="x"))
    assert len(plain.messages) == 1


@pytest.mark.parametrize("mode", ["plain-auth", "starttls", "tls"])
async def test_wrong_password_is_permanent(
    servers: dict[str, FakeSmtp], smtp: SmtpEmail, mode: str
) -> None:
    fake = servers[mode]
    fake.reset()
    with pytest.raises(PermanentError) as caught:
        await smtp.send(
            account(fake.base_url, username=USER, password="wrong"),
            OutboundMessage(to="ann@example.org", body="x"),
        )
    assert caught.value.code == "smtp_auth_failed"
    assert fake.messages == []


async def test_missing_credentials_get_the_servers_530(starttls: FakeSmtp, smtp: SmtpEmail) -> None:
    with pytest.raises(PermanentError) as caught:
        await smtp.send(account(starttls.base_url), OutboundMessage(to="ann@example.org", body="x"))
    assert caught.value.code == "smtp_530"


async def test_self_signed_certificate_fails_verification(
    starttls: FakeSmtp, implicit_tls: FakeSmtp, smtp: SmtpEmail
) -> None:
    for fake in (starttls, implicit_tls):
        strict = fake.base_url.replace("verify=false", "verify=true")
        with pytest.raises(PermanentError) as caught:
            await smtp.send(authed(fake, strict), OutboundMessage(to="ann@example.org", body="x"))
        assert caught.value.code == "smtp_tls_failed"
        assert "certificate" in caught.value.message
        assert fake.messages == []


async def test_required_starttls_refuses_a_server_without_it(
    plain: FakeSmtp, smtp: SmtpEmail
) -> None:
    required = plain.base_url.replace("starttls=off", "starttls=required")
    with pytest.raises(PermanentError) as caught:
        await smtp.send(account(required), OutboundMessage(to="ann@example.org", body="x"))
    assert caught.value.code == "smtp_not_supported"
    assert plain.messages == []


async def test_connection_refused_is_transient(smtp: SmtpEmail) -> None:
    url = f"smtp://127.0.0.1:{free_port()}?starttls=off"
    with pytest.raises(TransientError) as caught:
        await smtp.send(account(url), OutboundMessage(to="ann@example.org", body="x"))
    assert caught.value.code == "smtp_unreachable"


async def test_no_greeting_in_time_is_transient() -> None:
    # A socket that listens but never accepts: TCP connects, no 220 ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}?starttls=off"
        with pytest.raises(TransientError) as caught:
            await SmtpEmail(timeout=0.3, urls=LOOPBACK_POLICY).send(
                account(url), OutboundMessage(to="ann@example.org", body="x")
            )
    assert caught.value.code == "smtp_unreachable"


async def test_connection_dropped_after_data_is_outcome_unknown(
    plain: FakeSmtp, smtp: SmtpEmail
) -> None:
    plain.drop_next()
    with pytest.raises(OutcomeUnknown) as caught:
        await smtp.send(account(plain.base_url), OutboundMessage(to="ann@example.org", body="x"))
    assert caught.value.code == "smtp_connection_lost"
    assert plain.dropped == 1


async def test_no_answer_to_data_in_time_is_outcome_unknown(plain: FakeSmtp) -> None:
    plain.stall_next(2.0)
    with pytest.raises(OutcomeUnknown) as caught:
        await SmtpEmail(timeout=0.3, urls=LOOPBACK_POLICY).send(
            account(plain.base_url), OutboundMessage(to="ann@example.org", body="x")
        )
    assert caught.value.code == "smtp_timeout"


async def test_find_sent_cannot_ask_an_smtp_server(smtp: SmtpEmail) -> None:
    message = OutboundMessage(to="ann@example.org", body="x")
    assert await smtp.find_sent(account("smtp://127.0.0.1"), message, datetime.now(UTC)) == []
    await smtp.aclose()


def test_message_ids_are_unique_and_use_the_sender_domain() -> None:
    message = OutboundMessage(to="ann@example.org", body="x")
    ids = {build_message(account("smtp://h"), message)["Message-ID"] for _ in range(50)}
    assert len(ids) == 50
    assert all(str(i).endswith("@herald.example>") for i in ids)
