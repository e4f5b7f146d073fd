"""Bots and their conversations.

Opt-out suppressions are :mod:`herald.api.routes.suppressions`; Twilio's inbound-message
webhook, which a bot's number calls, is :mod:`herald.api.webhooks.twilio_inbound`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, Query, Response
from pydantic import AliasChoices, Field, StrictFloat

from herald.api.deps import HeraldDep, ProjectId
from herald.api.query import Offset
from herald.api.responses import API, JSON_BODY, Responses, errors
from herald.api.routes.webchat import script_url, snippet
from herald.api.webhooks.twilio_inbound import inbound_url
from herald.schemas.messages import WireModel
from herald.schemas.out.bots import (
    BotList,
    BotOut,
    ConversationDetail,
    ConversationList,
    ConversationMessage,
    ConversationOut,
)
from herald.services.bots import conversations
from herald.services.bots import resource as service
from herald.services.messages.accepting import CreationPolicy
from herald.store.bots import Bot

# Routes share one shape with every resource's (parse, one service call, render); what
# differs is their path, model and errors, so the shape is not factored out.
router = APIRouter(tags=["bots"])


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


async def _update(
    herald: HeraldDep, project: str, bot_id: str, fields: service.BotFields
) -> dict[str, Any]:
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


class _Doc(TypedDict):
    summary: str
    response_model: type[BotOut]
    responses: Responses


_UPDATE = _Doc(
    summary="Update a bot (fields left out are kept)",
    response_model=BotOut,
    responses=errors(API, JSON_BODY, 404, 409),
)


# PUT and PATCH both keep the fields left out; ``name`` keeps each its own operation id.
@router.put("/api/v1/bots/{bot_id}", name="put_bot", **_UPDATE)
@router.patch("/api/v1/bots/{bot_id}", name="patch_bot", **_UPDATE)
async def update_bot(
    bot_id: str, payload: BotIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    return await _update(herald, project, bot_id, payload.fields())


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
    return await _update(herald, project, bot_id, (payload or BotIn()).fields(**overrides))


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
        items = await conversations.list_conversations(
            session, project, bot_id, status=status, limit=limit, offset=offset
        )
    return {"count": len(items), "items": [conversations.conversation_out(c) for c in items]}


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
        return await conversations.get_conversation(session, project, bot_id, conversation_id)


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
        result = await conversations.send_as_bot(
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
        conversation = await conversations.close_conversation(
            session, project, bot_id, conversation_id, now=herald.clock.now()
        )
        return conversations.conversation_out(conversation)
