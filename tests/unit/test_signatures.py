"""Twilio's request signature (test vectors from twilio.md §4) and Herald's own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from herald.domain.signatures import (
    constant_time_equal,
    herald_signature,
    standard_webhook_signature,
    twilio_signature,
    verify_twilio_signature,
)

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
    "Caller": ["+14158675309"],
}


def test_twilio_vector() -> None:
    assert twilio_signature(URL, PARAMS, TOKEN) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilio_vector_with_port() -> None:
    url = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, PARAMS, TOKEN) == "kvajT1Ptam85bY51eRf/AJRuM3w="


def test_repeated_values_are_deduplicated_and_sorted() -> None:
    params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature(URL, params, TOKEN) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_verify_accepts_either_port_form() -> None:
    assert verify_twilio_signature(URL, PARAMS, TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert verify_twilio_signature(URL, PARAMS, TOKEN, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio_signature(with_port, PARAMS, TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_verify_rejects_tampering() -> None:
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not verify_twilio_signature(URL, {**PARAMS, "Digits": ["9999"]}, TOKEN, good)
    assert not verify_twilio_signature(URL, PARAMS, "wrong-token", good)
    assert not verify_twilio_signature(URL + "&x=1", PARAMS, TOKEN, good)
    assert not verify_twilio_signature(URL, PARAMS, TOKEN, "")


def test_herald_signature_format_and_value() -> None:
    body = b'{"id":"m1","status":"delivered"}'
    header = herald_signature("whsec_abc", 1700000000, body)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    expected = hmac.new(b"whsec_abc", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert v1 == f"v1={expected}"


def test_standard_webhook_signature_is_what_the_reference_library_computes() -> None:
    from standardwebhooks import Webhook

    from herald.services.projects import new_webhook_secret

    body = b'{"id":"m1","status":"delivered","text":"\xc3\xa9"}'
    for secret in (new_webhook_secret(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        ours = standard_webhook_signature(secret, "cb_1", 1700000000, body)
        theirs = Webhook(secret).sign("cb_1", datetime.fromtimestamp(1700000000, UTC), body)
        assert ours == theirs
    # The key is the base64 part decoded, never the secret's text (X-Herald-Signature's key).
    raw = secrets.token_bytes(32)
    secret = "whsec_" + base64.b64encode(raw).decode()
    mac = hmac.digest(raw, b"cb_1.1700000000." + body, "sha256")
    assert standard_webhook_signature(secret, "cb_1", 1700000000, body) == (
        "v1," + base64.b64encode(mac).decode()
    )


def test_a_secret_issued_before_standard_webhooks_still_signs_with_its_bytes() -> None:
    raw = bytes(range(32))
    legacy = "whsec_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    mac = hmac.digest(raw, b"cb.1." + b"{}", "sha256")
    assert (
        standard_webhook_signature(legacy, "cb", 1, b"{}") == "v1," + base64.b64encode(mac).decode()
    )


def test_port_variants_keep_the_host_as_written() -> None:
    # Twilio may sign with the default port added or the port left out; the host stays as
    # it was in the URL (case, IPv6 brackets), since the signature covers the URL's text.
    for public, signed in [
        ("https://Example.COM/x?a=1", "https://Example.COM:443/x?a=1"),
        ("https://Example.COM:443/x", "https://Example.COM/x"),
        ("https://[::1]:8443/x", "https://[::1]/x"),
        ("http://[::1]/x", "http://[::1]:80/x"),
    ]:
        signature = twilio_signature(signed, PARAMS, TOKEN)
        assert verify_twilio_signature(public, PARAMS, TOKEN, signature), (public, signed)
    lowered = twilio_signature("https://example.com:443/x", PARAMS, TOKEN)
    assert not verify_twilio_signature("https://Example.COM/x", PARAMS, TOKEN, lowered)


def test_a_signature_that_is_not_ascii_is_refused_not_raised_on() -> None:
    for signature in ("é", "RSOYDt4T1cUTdK1PDd93/VVr8B8é", "\udcff", "\x00", "ÿ" * 28):
        assert not verify_twilio_signature(URL, PARAMS, TOKEN, signature)
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abç")


def test_a_url_no_client_could_have_signed_does_not_raise() -> None:
    url = "https://mycompany.com/webhooks/\udcff"
    assert not verify_twilio_signature(url, PARAMS, TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
