"""Bots, their conversations, opt-out suppressions, and Twilio's inbound-message webhook."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import AliasChoices, Field, StrictFloat

from herald.api.deps import HeraldDep, ProjectId
from herald.api.query import Offset
from herald.api.responses import API, JSON_BODY, errors
from herald.api.routes.webchat import script_url, snippet
from herald.api.webhooks.providers import EMPTY_TWIML, public_url_of
from herald.bootstrap import bot_backend_client
from herald.schemas.messages import WireModel
from herald.schemas.out.bots import (
    BotList,
    BotOut,
    ConversationDetail,
    ConversationList,
    ConversationMessage,
    ConversationOut,
    SuppressionList,
    SuppressionOut,
)
from herald.services.bots import resource as service
from herald.services.delivery import suppressions
from herald.services.messages.accepting import CreationPolicy
from herald.store.bots import Bot, Suppression

router = APIRouter(tags=["bots"])

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class RuleIn(WireModel):
    match: str = "exact"
    pattern: str
    reply: str


def _either(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class BotIn(WireModel):
    # Seed 002's kebab-case names (twilio-account-sid, main-phone-number, ...) are accepted too.
    name: str | None = None
    account_sid: str | None = _either("accountSid", "twilio-account-sid")
    auth_token: str | None = _either("authToken", "twilio-auth-token")
    phone: str | None = _either("phone", "main-phone-number")
    base_url: str | None = _either("baseUrl")
    webhook_url: str | None = _either("webhookUrl")
    reply_timeout: StrictFloat | None = _either("replyTimeout")
    rules: list[RuleIn] | None = None
    default_reply: str | None = _either("defaultReply")
    help_text: str | None = _either("helpText")
    user_type: Literal["machine"] | None = _either("user-type", "userType")

    def fields(self, **overrides: str) -> service.BotFields:
        """Only what the client sent; ``null`` clears an optional field."""
        given: dict[str, Any] = {}
        for name in self.model_fields_set - {"user_type"}:
            value = getattr(self, name)
            if name == "rules":
                value = [r.model_dump() for r in value or []]
            given[name] = value
        given.update(overrides)
        required = ("name", "account_sid", "auth_token", "phone")
        for name in required:
            if name in given and given[name] is None:
                del given[name]  # null for a required field is "leave as is"
        return service.BotFields(**given)


class ReplyIn(WireModel):
    text: Annotated[str, Field(min_length=1, max_length=1600)]
    callback_url: str | None = Field(default=None, alias="callbackUrl")


class SuppressionIn(WireModel):
    # A channel's name (sms, whatsapp...), stored lowercased in a 20-character column that
    # PostgreSQL, unlike SQLite, holds to its width.
    channel: str = Field(default="sms", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")
    from_: str = Field(alias="from", min_length=1, max_length=200)
    to: str = Field(min_length=1, max_length=200)


def inbound_url(public_url: str, bot_id: str) -> str:
    """The URL to configure on the Twilio number ("A message comes in", HTTP POST)."""
    return f"{public_url.rstrip('/')}/webhooks/twilio/inbound/{bot_id}"


def bot_out(bot: Bot, public_url: str) -> dict[str, Any]:
    """A bot on the wire; the auth token is never returned."""
    return {
        "id": bot.id,
        "name": bot.name,
        "accountSid": bot.account_sid,
        "phone": bot.phone,
        "baseUrl": bot.base_url,
        "webhookUrl": bot.webhook_url,
        "replyTimeout": bot.reply_timeout,
        "rules": bot.rules or [],
        "defaultReply": bot.default_reply,
        "helpText": bot.help_text,
        "inboundWebhookUrl": inbound_url(public_url, bot.id),
        "webchat": {
            "scriptUrl": script_url(public_url),
            "snippet": snippet(public_url, bot.id),
            "pageUrl": f"{public_url.rstrip('/')}/chat/{bot.id}",
        },
        "createdAt": bot.created_at.isoformat(),
        "updatedAt": bot.updated_at.isoformat(),
    }


def suppression_out(s: Suppression) -> dict[str, Any]:
    return {
        "id": s.id,
        "channel": s.channel,
        "from": s.from_address,
        "to": s.to_address,
        "source": s.source,
        "createdAt": s.created_at.isoformat(),
    }


def twiml(replies: list[str]) -> str:
    """A TwiML answer with one <Message> per reply, or ``<Response/>`` for none."""
    if not replies:
        return EMPTY_TWIML
    body = "".join(f"<Message>{escape(_NOT_XML.sub('', r))}</Message>" for r in replies)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


# -- bots --------------------------------------------------------------------------------------


@router.post(
    "/api/v1/bots",
    status_code=201,
    summary="Create a bot",
    response_model=BotOut,
    responses=errors(API, JSON_BODY, 409),
)
async def create_bot(payload: BotIn, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        bot = await service.create_bot(
            session,
            herald.vault,
            project,
            payload.fields(),
            now=herald.clock.now(),
            urls=herald.settings.url_policy,
        )
        return bot_out(bot, herald.settings.public_url)


@router.get("/api/v1/bots", summary="List bots", response_model=BotList, responses=errors(API))
async def list_bots(herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        bots = await service.list_bots(session, project)
    return {"count": len(bots), "items": [bot_out(b, herald.settings.public_url) for b in bots]}


@router.get(
    "/api/v1/bots/{bot_id}", summary="Get a bot", response_model=BotOut, responses=errors(API, 404)
)
async def get_bot(bot_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        bot = await service.get_bot(session, project, bot_id)
    return bot_out(bot, herald.settings.public_url)


async def _update(bot_id: str, payload: BotIn, herald: HeraldDep, project: str) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        bot = await service.update_bot(
            session,
            herald.vault,
            project,
            bot_id,
            payload.fields(),
            now=herald.clock.now(),
            urls=herald.settings.url_policy,
        )
        return bot_out(bot, herald.settings.public_url)


@router.put(
    "/api/v1/bots/{bot_id}",
    summary="Update a bot (fields left out are kept)",
    response_model=BotOut,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def put_bot(
    bot_id: str, payload: BotIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    return await _update(bot_id, payload, herald, project)


@router.patch(
    "/api/v1/bots/{bot_id}",
    summary="Update a bot (fields left out are kept)",
    response_model=BotOut,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def patch_bot(
    bot_id: str, payload: BotIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    return await _update(bot_id, payload, herald, project)


def _unquoted(value: str | None) -> str | None:
    # Seed 002's example quotes its query values: twilio-account-sid="AC...".
    return value.strip().strip('"') if value is not None else None


@router.post(
    "/api/v1/bots/{bot_id}",
    summary="Update a bot, seed 002 style: query parameters and/or a JSON body",
    response_model=BotOut,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def post_bot(
    bot_id: str,
    herald: HeraldDep,
    project: ProjectId,
    payload: BotIn | None = None,
    account_sid: Annotated[str | None, Query(alias="twilio-account-sid")] = None,
    auth_token: Annotated[str | None, Query(alias="twilio-auth-token")] = None,
    phone: Annotated[str | None, Query(alias="main-phone-number")] = None,
    name: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    query = {
        "account_sid": _unquoted(account_sid),
        "auth_token": _unquoted(auth_token),
        "phone": _unquoted(phone),
        "name": _unquoted(name),
    }
    overrides = {k: v for k, v in query.items() if v is not None}
    fields = (payload or BotIn()).fields(**overrides)
    async with herald.sessions() as session, session.begin():
        bot = await service.update_bot(
            session,
            herald.vault,
            project,
            bot_id,
            fields,
            now=herald.clock.now(),
            urls=herald.settings.url_policy,
        )
        return bot_out(bot, herald.settings.public_url)


@router.delete(
    "/api/v1/bots/{bot_id}", status_code=204, summary="Delete a bot", responses=errors(API, 404)
)
async def delete_bot(bot_id: str, herald: HeraldDep, project: ProjectId) -> Response:
    async with herald.sessions() as session, session.begin():
        await service.delete_bot(session, project, bot_id)
    return Response(status_code=204)


# -- conversations -----------------------------------------------------------------------------


@router.get(
    "/api/v1/bots/{bot_id}/conversations",
    summary="List a bot's conversations",
    response_model=ConversationList,
    responses=errors(API, 404),
)
async def list_conversations(
    bot_id: str,
    herald: HeraldDep,
    project: ProjectId,
    status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    async with herald.sessions() as session:
        items = await service.list_conversations(
            session, project, bot_id, status=status, limit=limit, offset=offset
        )
    return {"count": len(items), "items": [service.conversation_out(c) for c in items]}


@router.get(
    "/api/v1/bots/{bot_id}/conversations/{conversation_id}",
    summary="A conversation with its messages, in order (marks it read)",
    response_model=ConversationDetail,
    response_model_exclude_unset=True,
    responses=errors(API, 404),
)
async def get_conversation(
    bot_id: str, conversation_id: str, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        return await service.get_conversation(session, project, bot_id, conversation_id)


@router.post(
    "/api/v1/bots/{bot_id}/conversations/{conversation_id}/messages",
    status_code=201,
    summary="Send a message in the conversation as the bot",
    response_model=ConversationMessage,
    response_model_exclude_unset=True,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def send_message(
    bot_id: str, conversation_id: str, payload: ReplyIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        result = await service.send_as_bot(
            session,
            project,
            bot_id,
            conversation_id,
            payload.text,
            now=herald.clock.now(),
            policy=CreationPolicy.from_settings(herald.settings),
            callback_url=payload.callback_url,
        )
    herald.work_available.set()
    return result


@router.post(
    "/api/v1/bots/{bot_id}/conversations/{conversation_id}/close",
    summary="Close a conversation (the person's next text reopens it)",
    response_model=ConversationOut,
    responses=errors(API, 404),
)
async def close_conversation(
    bot_id: str, conversation_id: str, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        conversation = await service.close_conversation(
            session, project, bot_id, conversation_id, now=herald.clock.now()
        )
        return service.conversation_out(conversation)


# -- suppressions ------------------------------------------------------------------------------


@router.get(
    "/api/v1/suppressions",
    tags=["suppressions"],
    summary="List opt-out suppressions",
    response_model=SuppressionList,
    responses=errors(API),
)
async def list_suppressions(
    herald: HeraldDep,
    project: ProjectId,
    channel: str | None = None,
    to: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    async with herald.sessions() as session:
        items = await suppressions.list_suppressions(
            session,
            project,
            channel=channel,
            to_address=to,
            from_address=from_,
            limit=limit,
            offset=offset,
        )
    return {"count": len(items), "items": [suppression_out(s) for s in items]}


@router.post(
    "/api/v1/suppressions",
    status_code=201,
    tags=["suppressions"],
    summary="Suppress a pair",
    response_model=SuppressionOut,
    responses=errors(API, JSON_BODY),
)
async def add_suppression(
    payload: SuppressionIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        await suppressions.record_suppression(
            session,
            project,
            payload.channel,
            payload.from_,
            payload.to,
            "api",
            at=herald.clock.now(),
        )
        found = await suppressions.list_suppressions(
            session,
            project,
            channel=payload.channel,
            to_address=payload.to,
            from_address=payload.from_,
            limit=1,
        )
        return suppression_out(found[0])


@router.delete(
    "/api/v1/suppressions/{suppression_id}",
    status_code=204,
    tags=["suppressions"],
    summary="Remove a suppression",
    responses=errors(API, 404),
)
async def remove_suppression(
    suppression_id: str, herald: HeraldDep, project: ProjectId
) -> Response:
    async with herald.sessions() as session, session.begin():
        await suppressions.remove_suppression(session, project, suppression_id)
    return Response(status_code=204)


# -- Twilio's inbound-message webhook ----------------------------------------------------------


@router.post(
    "/webhooks/twilio/inbound/{bot_id}",
    tags=["webhooks"],
    summary="Twilio inbound message",
    response_class=Response,
    responses={
        200: {
            "description": "TwiML: the bot's immediate replies, if any.",
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        **errors(400, 403, 404, 413),
    },
)
async def twilio_inbound(
    bot_id: str,
    request: Request,
    herald: HeraldDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    # Twilio posts application/x-www-form-urlencoded; blank values are signed too.
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(
        (await request.body()).decode(errors="replace"), keep_blank_values=True
    ):
        params.setdefault(key, []).append(value)
    inbound = service.InboundText(
        bot_id=bot_id,
        url=public_url_of(request, herald.settings.public_url),
        params=params,
        signature=x_twilio_signature,
        received_at=herald.clock.now(),
    )
    async with bot_backend_client(herald.settings) as client:
        replies = await service.handle_inbound(herald.sessions, herald.vault, client, inbound)
    return Response(twiml(replies), media_type="text/xml")
