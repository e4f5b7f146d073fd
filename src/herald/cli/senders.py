"""``herald senders``: register, list, change and remove senders, through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from herald.cli.http import KeyOpt, UrlOpt, api_call, api_client, fail
from herald.cli.output import console, listing

senders_app = typer.Typer(
    help="Register, list, change and remove the provider accounts a project sends from.",
    no_args_is_help=True,
)


# The account options of senders add and update, by their wire names. The commands declare
# them as parameters for typer and read them through ctx.params with this mapping.
_ACCOUNT_OPTIONS = {
    "account_sid": "accountSid",
    "auth_token": "authToken",
    "username": "username",
    "password": "password",
    "bot_token": "botToken",
    "phone_number_id": "phoneNumberId",
    "access_token": "accessToken",
    "app_secret": "appSecret",
    "verify_token": "verifyToken",
}


def _account_fields(ctx: typer.Context) -> dict[str, Any]:
    """The account options as the API names them (None where not given)."""
    return {key: ctx.params[name] for name, key in _ACCOUNT_OPTIONS.items()}


# Alike in shape, the option declarations stay one per parameter (typer reads signatures);
# add's and update's differ in help and in whether the environment is read.
@senders_app.command("add")
def senders_add(
    ctx: typer.Context,
    from_: Annotated[
        str,
        typer.Option(
            "--from", help="Number (E.164), alphanumeric ID, e-mail address or @bot name."
        ),
    ],
    provider: Annotated[
        str,
        typer.Option(
            help="twilio or sandbox (sms), smtp (email), telegram, "
            "twilio-whatsapp or meta-whatsapp (whatsapp)."
        ),
    ] = "twilio",
    channel: Annotated[str, typer.Option(help="sms, email, telegram or whatsapp.")] = "sms",
    account_sid: Annotated[
        str | None, typer.Option(help="Twilio Account SID (AC…).", envvar="TWILIO_ACCOUNT_SID")
    ] = None,
    auth_token: Annotated[
        str | None, typer.Option(help="Twilio auth token.", envvar="TWILIO_AUTH_TOKEN")
    ] = None,
    username: Annotated[
        str | None, typer.Option(help="SMTP user name.", envvar="SMTP_USERNAME")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="SMTP password.", envvar="SMTP_PASSWORD")
    ] = None,
    bot_token: Annotated[
        str | None, typer.Option(help="Telegram bot token.", envvar="TELEGRAM_BOT_TOKEN")
    ] = None,
    phone_number_id: Annotated[
        str | None, typer.Option(help="Meta WhatsApp phone number ID.")
    ] = None,
    access_token: Annotated[
        str | None, typer.Option(help="Meta access token.", envvar="META_ACCESS_TOKEN")
    ] = None,
    app_secret: Annotated[
        str | None, typer.Option(help="Meta app secret.", envvar="META_APP_SECRET")
    ] = None,
    verify_token: Annotated[
        str | None, typer.Option(help="Meta webhook verify token.", envvar="META_VERIFY_TOKEN")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Provider API base URL (smtp://host:587 for e-mail).")
    ] = None,
    rate_limit: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    default: Annotated[
        bool | None, typer.Option("--default/--not-default", help="Make it the channel's default.")
    ] = None,
    smart_encoding: Annotated[
        bool, typer.Option(help="Turn typographic look-alikes into GSM-7 before sending.")
    ] = False,
    url: UrlOpt = "http://127.0.0.1:8000",
    api_key: KeyOpt = "",
) -> None:
    """Register a sender through the API (credentials are encrypted at rest).

    Secrets can come from the environment instead of the command line (and shell history):
    TWILIO_AUTH_TOKEN, SMTP_PASSWORD, TELEGRAM_BOT_TOKEN, META_ACCESS_TOKEN, META_APP_SECRET.
    """
    body: dict[str, Any] = {
        "channel": channel,
        "provider": provider,
        "from": from_,
        **_account_fields(ctx),
        "baseUrl": base_url,
        "rateLimit": rate_limit,
        "default": default,
        "smartEncoding": smart_encoding,
    }
    # Imported here: the services pull in every channel, which the other commands do not need.
    from herald.services.sender_accounts import ACCOUNT_FIELDS

    used = ACCOUNT_FIELDS.get(provider.lower(), ())
    for name, key in _ACCOUNT_OPTIONS.items():
        # A secret exported for another provider (TWILIO_ACCOUNT_SID in a Twilio user's
        # shell) is not this sender's. One typed on the command line is sent, and refused.
        source = ctx.get_parameter_source(name)
        if key not in used and source is not None and source.name == "ENVIRONMENT":
            body[key] = None
    with api_client(url, api_key) as client:
        sender = api_call(
            client, "POST", "/api/v1/senders", json={k: v for k, v in body.items() if v is not None}
        )
    console.print(
        f"Sender {sender['id']} added: {sender['provider']} {escape(sender['from'])}"
        f"{' (default)' if sender['default'] else ''}"
    )
    if "inboundWebhookUrl" in sender:
        console.print(
            "Give Telegram's setWebhook this url and secret_token so answers reach Herald:\n"
            f"  url: {sender['inboundWebhookUrl']}\n"
            f"  secret_token: {sender['webhookSecretToken']}"
        )


@senders_app.command("list")
def senders_list(url: UrlOpt = "http://127.0.0.1:8000", api_key: KeyOpt = "") -> None:
    """List the project's senders."""
    with api_client(url, api_key) as client:
        data = api_call(client, "GET", "/api/v1/senders")
    table = listing("id", "channel", "provider", "from", "rate/s", "default")
    for s in data["items"]:
        table.add_row(
            s["id"],
            s["channel"],
            s["provider"],
            s["from"],
            str(s["rateLimit"] or "-"),
            "yes" if s["default"] else "",
        )
    console.print(table)


@senders_app.command("update")
def senders_update(
    ctx: typer.Context,
    sender_id: Annotated[str, typer.Argument(help="The sender's id (see 'herald senders list').")],
    default: Annotated[
        bool, typer.Option("--default", help="Make it the channel's default sender.")
    ] = False,
    rate_limit: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    no_rate_limit: Annotated[
        bool, typer.Option("--no-rate-limit", help="Send as fast as the provider takes.")
    ] = False,
    smart_encoding: Annotated[
        bool | None,
        typer.Option("--smart-encoding/--no-smart-encoding", help="GSM-7 look-alikes on or off."),
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Provider API base URL.")] = None,
    account_sid: Annotated[str | None, typer.Option(help="Twilio Account SID.")] = None,
    auth_token: Annotated[str | None, typer.Option(help="New Twilio auth token.")] = None,
    username: Annotated[str | None, typer.Option(help="New SMTP user name.")] = None,
    password: Annotated[str | None, typer.Option(help="New SMTP password.")] = None,
    bot_token: Annotated[str | None, typer.Option(help="New Telegram bot token.")] = None,
    phone_number_id: Annotated[
        str | None, typer.Option(help="Meta WhatsApp phone number ID.")
    ] = None,
    access_token: Annotated[str | None, typer.Option(help="New Meta access token.")] = None,
    app_secret: Annotated[str | None, typer.Option(help="New Meta app secret.")] = None,
    verify_token: Annotated[str | None, typer.Option(help="New Meta verify token.")] = None,
    url: UrlOpt = "http://127.0.0.1:8000",
    api_key: KeyOpt = "",
) -> None:
    """Change a sender's settings or secrets; what is not given stays as it is.

    Unlike 'add', no secret is read from the environment here, so a variable left set
    for another sender cannot overwrite this one's.
    """
    if rate_limit is not None and no_rate_limit:
        raise fail("give --rate-limit or --no-rate-limit, not both")
    body: dict[str, Any] = {
        "rateLimit": rate_limit,
        "smartEncoding": smart_encoding,
        "baseUrl": base_url,
        **_account_fields(ctx),
    }
    changes = {k: v for k, v in body.items() if v is not None}
    if default:
        changes["default"] = True
    if no_rate_limit:
        changes["rateLimit"] = None
    if not changes:
        raise fail("nothing to change: see 'herald senders update --help'")
    with api_client(url, api_key) as client:
        sender = api_call(client, "PATCH", f"/api/v1/senders/{sender_id}", json=changes)
    rate = f"{sender['rateLimit']}/s" if sender["rateLimit"] else "no rate limit"
    console.print(
        f"Sender {sender['id']} updated: {sender['provider']} {escape(sender['from'])}, {rate}"
        f"{' (default)' if sender['default'] else ''}"
    )


@senders_app.command("remove")
def senders_remove(
    sender_id: Annotated[str, typer.Argument(help="The sender's id (see 'herald senders list').")],
    url: UrlOpt = "http://127.0.0.1:8000",
    api_key: KeyOpt = "",
) -> None:
    """Stop using a sender; refused while messages still wait to go out through it."""
    with api_client(url, api_key) as client:
        api_call(client, "DELETE", f"/api/v1/senders/{sender_id}")
    console.print(f"Sender {sender_id} removed; its messages' history stays.")
