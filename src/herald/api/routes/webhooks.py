"""Provider webhooks. Signatures are checked before anything is read from the database.

Twilio's status callbacks are not here: they are answered before FastAPI's routing, in
``herald.api.twilio_status``.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Header, Request, Response

from herald.api.deps import HeraldDep
from herald.services.accepting import CreationPolicy
from herald.services.meta_reports import apply_meta_webhook, confirm_subscription
from herald.services.telegram_inbound import handle_update

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_url(public_base: str, path: str, query: str) -> str:
    """The URL the provider called, as it saw it: behind a proxy, our public URL, not ours."""
    url = public_base.rstrip("/") + path
    return f"{url}?{query}" if query else url


def public_url_of(request: Request, public_base: str) -> str:
    return public_url(public_base, request.url.path, request.url.query)


@router.get("/meta/whatsapp/{sender_id}", summary="Meta webhook subscription check")
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


@router.post("/meta/whatsapp/{sender_id}", summary="Meta WhatsApp statuses and messages")
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


@router.post("/telegram/{sender_id}", summary="Telegram updates (people answering a bot)")
async def telegram_webhook(
    sender_id: str,
    request: Request,
    herald: HeraldDep,
    x_telegram_bot_api_secret_token: Annotated[str | None, Header()] = None,
) -> Response:
    async with httpx.AsyncClient(headers={"User-Agent": "Herald-Bots/0.1"}) as client:
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
