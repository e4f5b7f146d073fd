"""Webhook signatures: Twilio's ``X-Twilio-Signature``, Herald's own ``X-Herald-Signature``
and the Standard Webhooks ``webhook-signature`` Herald's client callbacks also carry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit


def constant_time_equal(expected: str, given: str) -> bool:
    """Whether a received secret or signature is the expected one, in constant time.

    Compared as bytes: ``hmac.compare_digest`` raises on a ``str`` that is not ASCII, and a
    header or query value is whatever the caller chose to send.
    """
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def twilio_signature(url: str, params: Mapping[str, Iterable[str]], auth_token: str) -> str:
    """Twilio's HMAC-SHA1 over the URL and the sorted, de-duplicated form parameters."""
    parts = [url]
    for name in sorted(params):
        for value in sorted(set(params[name])):
            parts.append(name + value)
    # surrogatepass: a path or value no client could have signed must still fail to match,
    # not raise.
    signed = "".join(parts).encode("utf-8", "surrogatepass")
    digest = hmac.digest(auth_token.encode(), signed, "sha1")
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port.

    Twilio signs "inconsistently" with respect to ports, so its own SDKs accept any of these.
    """
    split = urlsplit(url)
    userinfo, at, hostport = split.netloc.rpartition("@")
    # The host exactly as written (case, IPv6 brackets): Twilio's SDKs rebuild these URLs
    # from the netloc, and the signature covers the URL's text, not the host it names.
    bracketed = hostport.find("]") + 1 if hostport.startswith("[") else 0
    name, _, port = hostport[bracketed:].partition(":")
    host = hostport[:bracketed] + name
    default = "443" if split.scheme == "https" else "80"
    without = urlunsplit(split._replace(netloc=f"{userinfo}{at}{host}"))
    with_default = urlunsplit(split._replace(netloc=f"{userinfo}{at}{host}:{port or default}"))
    return list(dict.fromkeys([url, without, with_default]))


def verify_twilio_signature(
    url: str, params: Mapping[str, Iterable[str]], auth_token: str, signature: str
) -> bool:
    """Constant-time check of a received ``X-Twilio-Signature``."""
    materialised = {k: list(v) for k, v in params.items()}
    if constant_time_equal(twilio_signature(url, materialised, auth_token), signature):
        return True
    return any(
        constant_time_equal(twilio_signature(candidate, materialised, auth_token), signature)
        for candidate in _port_variants(url)[1:]
    )


def herald_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Herald-Signature`` header value for an outbound client callback."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key Standard Webhooks derive from a ``whsec_…`` secret: its base64 part, decoded.

    Secrets issued before Herald followed the standard are URL-safe base64 without padding;
    they decode that way (the libraries cannot read them: ``herald projects rotate-secret``).
    """
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def standard_webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256
    of ``"{id}.{timestamp}.{body}"``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.digest(webhook_secret_key(secret), signed, "sha256")
    return "v1," + base64.b64encode(mac).decode()
