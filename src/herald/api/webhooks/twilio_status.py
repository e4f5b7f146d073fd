"""Twilio's status callbacks, answered as a bare ASGI endpoint in front of FastAPI.

Every SMS brings two (sent, delivered), so at 1,000 messages a second they are two thirds of
all requests. Profiled, FastAPI's routing (matching the path against every route in turn),
dependency solving and middleware cost more per callback than verifying and applying it;
the endpoint needs none of them: it reads a form, hands it to the group committer and
answers with empty TwiML or Herald's usual error response.
"""

from __future__ import annotations

import logging

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from herald.api.errors import INTERNAL_ERROR, error_response, method_not_allowed
from herald.api.webhooks.forms import EMPTY_TWIML, public_url
from herald.bootstrap import Herald
from herald.domain.form_params import parse_form
from herald.errors import HeraldError
from herald.services.delivery.twilio_reports import TwilioReport

log = logging.getLogger("herald.api")

PATH_PREFIX = "/webhooks/twilio/status/"
# Twilio's callbacks are a few hundred bytes; anything far larger is not one.
MAX_BODY = 64 * 1024


def attempt_of(scope: Scope) -> str | None:
    """The attempt id when ``scope`` is a request to a status callback URL, else None."""
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if not path.startswith(PATH_PREFIX):
        return None
    attempt_id = path[len(PATH_PREFIX) :]
    return attempt_id if attempt_id and "/" not in attempt_id else None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is larger than any callback could be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def handle(
    herald: Herald, attempt_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    if scope["method"] != "POST":
        await method_not_allowed(scope["method"], ["POST"])(scope, receive, send)
        return
    body = await _read_body(receive)
    if body is None:
        too_large = error_response(413, "A status callback cannot be this large.", "body_too_large")
        await too_large(scope, receive, send)
        return
    signature: str | None = None
    for name, value in scope["headers"]:
        if name == b"x-twilio-signature":
            signature = value.decode("latin-1")
            break
    # Twilio signs the URL it was given (our public one, whatever proxy is in between) and
    # every posted parameter, blank ones included.
    params = parse_form(body)
    report = TwilioReport(
        attempt_id=attempt_id,
        url=public_url(
            herald.settings.public_url,
            scope.get("root_path", "") + scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
        ),
        params=params,
        signature=signature,
        received_at=herald.clock.now(),
    )
    response: Response
    try:
        await herald.twilio_reports.submit(report)
    except HeraldError as e:
        response = error_response(e.status_code, e.message, e.code, e.details)
    except Exception:
        log.exception("applying a Twilio status callback failed")
        response = error_response(500, INTERNAL_ERROR, "internal_error")
    else:
        response = Response(EMPTY_TWIML, media_type="text/xml")
    await response(scope, receive, send)
