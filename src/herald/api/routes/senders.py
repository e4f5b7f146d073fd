"""``/api/v1/senders``: provider accounts a project sends from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field, StrictBool, StrictFloat

from herald.api.deps import HeraldDep, ProjectId
from herald.api.query import Fields, list_sort
from herald.api.responses import API, JSON_BODY, body, errors
from herald.api.twin_lists import listed_response, sort_query
from herald.bootstrap import Herald
from herald.schemas.messages import WireModel
from herald.schemas.out.project import SenderList, SenderOut, TelegramWebhook
from herald.services import senders as service
from herald.services.bots.telegram_inbound import webhook_info
from herald.services.sender_accounts import NewSender
from herald.store.senders import Sender

# Alike across route modules (duplicates): the decorator with its responses, a session and
# one service call, TWIN's paging parameters. FastAPI reads each signature; the logic differs.
router = APIRouter(prefix="/api/v1/senders", tags=["senders"])


class _SenderSettingsIn(WireModel):
    """What a sender has besides its identity (channel, provider, from)."""

    account_sid: str | None = Field(default=None, alias="accountSid")
    phone_number_id: str | None = Field(default=None, alias="phoneNumberId")
    auth_token: str | None = Field(default=None, alias="authToken")
    base_url: str | None = Field(default=None, alias="baseUrl")
    rate_limit: StrictFloat | None = Field(default=None, alias="rateLimit")
    default: StrictBool | None = None
    smart_encoding: StrictBool | None = Field(default=None, alias="smartEncoding")
    username: str | None = None
    password: str | None = None
    bot_token: str | None = Field(default=None, alias="botToken")
    access_token: str | None = Field(default=None, alias="accessToken")
    app_secret: str | None = Field(default=None, alias="appSecret")
    verify_token: str | None = Field(default=None, alias="verifyToken")


class SenderIn(_SenderSettingsIn):
    channel: str
    provider: str
    from_: str = Field(alias="from")
    smart_encoding: StrictBool = Field(default=False, alias="smartEncoding")

    def new_sender(self) -> NewSender:
        """The sender as the service takes it; Meta's phoneNumberId stands in accountSid's place."""
        fields = self.model_dump(exclude={"from_", "phone_number_id"})
        fields["account_sid"] = self.account_sid or self.phone_number_id
        return NewSender(from_address=self.from_, **fields)


class SenderChangesIn(_SenderSettingsIn):
    """``PATCH``: the fields to change; channel, provider and from are what the sender is."""

    def changes(self) -> dict[str, Any]:
        """What the client sent (an explicit null clears a field, e.g. rateLimit)."""
        sent = self.model_dump(exclude_unset=True)
        if "phone_number_id" in sent:  # Meta's account id
            sent["account_sid"] = sent.pop("phone_number_id")
        for flag in ("smart_encoding", "default"):  # null means "as it is", not false
            if sent.get(flag, False) is None:
                del sent[flag]
        return sent


def sender_out(sender: Sender) -> dict[str, Any]:
    """TWIN's sender shape (companyId, from, channel, provider, price) plus Herald's fields.

    Secrets are never returned.
    """
    return {
        "id": sender.id,
        "companyId": 0,
        "from": sender.from_address,
        "channel": sender.channel.upper(),
        "provider": sender.provider.upper(),
        "price": "0",
        "accountSid": sender.account_id,
        "baseUrl": sender.base_url,
        "rateLimit": sender.rate_limit,
        "default": sender.is_default,
        "smartEncoding": sender.smart_encoding,
        "createdAt": sender.created_at.isoformat(),
    }


@router.post(
    "",
    status_code=201,
    summary="Register a sender",
    response_model=SenderOut,
    response_model_exclude_unset=True,
    responses=errors(API, JSON_BODY, 409),
)
async def add_sender(payload: SenderIn, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        sender = await service.add_sender(
            session,
            herald.vault,
            project,
            payload.new_sender(),
            urls=herald.settings.url_policy,
        )
        return _with_webhook(sender, herald)


def _with_webhook(sender: Sender, herald: Herald) -> dict[str, Any]:
    out = sender_out(sender)
    if sender.provider == "telegram":
        # Give these to Telegram's setWebhook so people's answers reach the bots (the secret
        # follows the bot token, so a new token means a new setWebhook).
        out.update(webhook_info(sender, herald.vault, herald.settings.public_url))
    return out


@router.patch(
    "/{sender_id}",
    summary="Change a sender's settings or secrets",
    response_model=SenderOut,
    response_model_exclude_unset=True,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def update_sender(
    sender_id: str, payload: SenderChangesIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    """Fields left out are kept; ``default: true`` takes over as the channel's default."""
    async with herald.sessions() as session, session.begin():
        sender = await service.update_sender(
            session,
            herald.vault,
            project,
            sender_id,
            payload.changes(),
            urls=herald.settings.url_policy,
        )
        return _with_webhook(sender, herald)


@router.get(
    "",
    summary="List senders (TWIN shape)",
    response_model=None,
    responses={**body(SenderList), **errors(API)},
)
async def list_senders(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    channel: str | None = None,
    provider: str | None = None,
    sort: Annotated[
        str | None, sort_query(service.SORT_KEYS, "oldest first, the order they were added")
    ] = None,
    fields: Fields = None,
) -> Response:
    """``fields`` keeps only those keys of each item."""
    newest_first = list_sort(sort, service.SORT_KEYS)[1] if sort else False
    async with herald.sessions() as session:
        senders = await service.list_senders(
            session, project, channel=channel, provider=provider, newest_first=newest_first
        )
    listed = {"count": len(senders), "items": [sender_out(s) for s in senders]}
    return listed_response(request, listed, SenderList, exclude_unset=True)


@router.get(
    "/{sender_id}/telegram-webhook",
    summary="The URL and secret token to give Telegram's setWebhook for this sender",
    response_model=TelegramWebhook,
    responses=errors(API, 404),
)
async def telegram_webhook(sender_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, str]:
    async with herald.sessions() as session:
        sender = await service.telegram_sender(session, project, sender_id)
    return webhook_info(sender, herald.vault, herald.settings.public_url)


@router.delete(
    "/{sender_id}", status_code=204, summary="Remove a sender", responses=errors(API, 404, 409)
)
async def delete_sender(sender_id: str, herald: HeraldDep, project: ProjectId) -> Response:
    """Refused (409 sender_in_use) while messages still wait to go out through it."""
    async with herald.sessions() as session, session.begin():
        await service.remove_sender(session, project, sender_id, herald.clock.now())
    return Response(status_code=204)
