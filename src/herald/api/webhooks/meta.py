"""Meta's WhatsApp webhook: the subscription check, then statuses and incoming messages.

The signature is checked before anything is read from the database.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from herald.api.deps import HeraldDep
from herald.api.webhooks.forms import answered
from herald.services.delivery.meta_reports import apply_meta_webhook, confirm_subscription

# Each webhook has the same shape (verify, one service call, a bare answer); they differ in
# the header that proves the sender and the service they hand the body to.
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get(
    "/meta/whatsapp/{sender_id}",
    summary="Meta webhook subscription check",
    response_class=Response,
    responses=answered("The challenge, echoed.", "text/plain"),
)
async def meta_subscribe(sender_id: str, request: Request, herald: HeraldDep) -> Response:
    q = request.query_params
    async with herald.sessions() as session:
        challenge = await confirm_subscription(
            session,
            herald.vault,
            sender_id,
            q.get("hub.mode"),
            q.get("hub.verify_token"),
            q.get("hub.challenge"),
        )
    return Response(challenge, media_type="text/plain")


@router.post(
    "/meta/whatsapp/{sender_id}",
    summary="Meta WhatsApp statuses and messages",
    response_class=Response,
    responses=answered("Applied; no body."),
)
async def meta_webhook(
    sender_id: str,
    request: Request,
    herald: HeraldDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> Response:
    async with herald.sessions() as session, session.begin():
        await apply_meta_webhook(
            session,
            herald.vault,
            sender_id,
            await request.body(),
            x_hub_signature_256,
            herald.clock.now(),
        )
    return Response(status_code=200)
