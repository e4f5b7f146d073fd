"""Provider webhooks. Signatures are checked before anything is read from the database.

Twilio's status callbacks are not here: they are answered before FastAPI's routing, in
``herald.api.webhooks.twilio_status``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from herald.api.deps import HeraldDep
from herald.api.responses import Responses, errors
from herald.bootstrap import bot_backend_client
from herald.services.bots.telegram_inbound import handle_update
from herald.services.delivery.meta_reports import apply_meta_webhook, confirm_subscription
from herald.services.messages.accepting import CreationPolicy

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_url(public_base: str, path: str, query: str) -> str:
    """The URL the provider called, as it saw it: behind a proxy, our public URL, not ours."""
    url = public_base.rstrip("/") + path
    return f"{url}?{query}" if query else url


def public_url_of(request: Request, public_base: str) -> str:
    return public_url(public_base, request.url.path, request.url.query)


def _answer(description: str, media_type: str | None = None) -> Responses:
    content = {media_type: {"schema": {"type": "string"}}} if media_type else {}
    return {200: {"description": description, "content": content}, **errors(400, 403, 404, 413)}


@router.get(
    "/meta/whatsapp/{sender_id}",
    summary="Meta webhook subscription check",
    response_class=Response,
    responses=_answer("The challenge, echoed.", "text/plain"),
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
    responses=_answer("Applied; no body."),
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


@router.post(
    "/telegram/{sender_id}",
    summary="Telegram updates (people answering a bot)",
    response_class=Response,
    responses=_answer("Handled; no body."),
)
async def telegram_webhook(
    sender_id: str,
    request: Request,
    herald: HeraldDep,
    x_telegram_bot_api_secret_token: Annotated[str | None, Header()] = None,
) -> Response:
    async with bot_backend_client(herald.settings) as client:
        sent = await handle_update(
            herald.sessions,
            herald.vault,
            client,
            sender_id,
            await request.body(),
            x_telegram_bot_api_secret_token,
            now=herald.clock.now(),
            policy=CreationPolicy.from_settings(herald.settings),
        )
    if sent:
        herald.work_available.set()
    return Response(status_code=200)
