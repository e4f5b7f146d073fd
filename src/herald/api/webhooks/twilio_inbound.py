"""Twilio's inbound-message webhook: a person texting a bot's number.

Herald answers with TwiML carrying the bot's immediate replies, if any; see
:mod:`herald.services.bots.inbound` for how a text is verified, stored and answered.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from herald.api.deps import HeraldDep
from herald.api.webhooks.forms import answered, public_url_of, twiml
from herald.bootstrap import bot_backend_client
from herald.domain.form_params import parse_form
from herald.services.bots.inbound import InboundText, handle_inbound

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def inbound_url(public_url: str, bot_id: str) -> str:
    """The URL to configure on the Twilio number ("A message comes in", HTTP POST)."""
    return f"{public_url.rstrip('/')}/webhooks/twilio/inbound/{bot_id}"


@router.post(
    "/twilio/inbound/{bot_id}",
    summary="Twilio inbound message",
    response_class=Response,
    responses=answered("TwiML: the bot's immediate replies, if any.", "text/xml"),
)
async def twilio_inbound(
    bot_id: str,
    request: Request,
    herald: HeraldDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    inbound = InboundText(
        bot_id=bot_id,
        url=public_url_of(request, herald.settings.public_url),
        params=parse_form(await request.body()),
        signature=x_twilio_signature,
        received_at=herald.clock.now(),
    )
    async with bot_backend_client(herald.settings) as client:
        replies = await handle_inbound(herald.sessions, herald.vault, client, inbound)
    return Response(twiml(replies), media_type="text/xml")
