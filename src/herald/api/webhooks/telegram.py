"""Telegram's webhook: people answering a bot, and blocking it (the secret token is checked
before anything is read from the database)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from herald.api.deps import HeraldDep
from herald.api.webhooks.forms import answered
from herald.bootstrap import bot_backend_client
from herald.services.bots.telegram_inbound import handle_update
from herald.services.messages.accepting import CreationPolicy

# Shaped like the other webhooks on purpose: verify, one service call, a bare answer.
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/telegram/{sender_id}",
    summary="Telegram updates (people answering a bot)",
    response_class=Response,
    responses=answered("Handled; no body."),
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
