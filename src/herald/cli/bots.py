"""``herald bots``: two-way SMS bots, their conversations and opt-outs, through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from herald.cli.http import KeyOpt, UrlOpt, api_call, api_client, fail
from herald.cli.output import console, listing

bots_app = typer.Typer(
    help="Two-way SMS bots on Twilio numbers: create, update, list, delete; conversations.",
    no_args_is_help=True,
)

DEFAULT_URL = "http://127.0.0.1:8000"
RulesOpt = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help='A JSON file with keyword rules: [{"match": "exact"|"regex", "pattern", "reply"}].',
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", help="The bot's name.")]
SidOpt = Annotated[
    str | None,
    typer.Option("--account-sid", help="Twilio Account SID (AC…).", envvar="TWILIO_ACCOUNT_SID"),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--auth-token", help="Twilio auth token.", envvar="TWILIO_AUTH_TOKEN"),
]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="The Twilio number, E.164.")]
WebhookOpt = Annotated[
    str | None,
    typer.Option("--webhook-url", help="Your bot backend; Herald POSTs each text to it."),
]
DefaultReplyOpt = Annotated[
    str | None, typer.Option("--default-reply", help="Reply when no rule matches.")
]
HelpTextOpt = Annotated[str | None, typer.Option("--help-text", help="The answer to HELP/INFO.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Twilio API base URL.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--reply-timeout", help="Seconds to wait for the backend (0.1-10, default 3)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _body(
    name: str | None,
    account_sid: str | None,
    auth_token: str | None,
    phone: str | None,
    webhook_url: str | None,
    default_reply: str | None,
    help_text: str | None,
    base_url: str | None,
    reply_timeout: float | None,
    rules: Path | None,
) -> dict[str, Any]:
    given = {
        "name": name,
        "accountSid": account_sid,
        "authToken": auth_token,
        "phone": phone,
        "webhookUrl": webhook_url,
        "defaultReply": default_reply,
        "helpText": help_text,
        "baseUrl": base_url,
        "replyTimeout": reply_timeout,
    }
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if rules is not None:
        try:
            body["rules"] = json.loads(rules.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise fail(f"cannot read {rules}: {e}") from e
    return body


def _show(bot: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        console.print_json(data=bot)
        return
    console.print(f"Bot [bold]{escape(bot['id'])}[/bold] {verb} on {escape(bot['phone'])}.")
    console.print(
        "Set the number's 'A message comes in' webhook (HTTP POST) to:\n"
        f"  {escape(bot['inboundWebhookUrl'])}"
    )


@bots_app.command("create")
def create(
    name: NameOpt = None,
    account_sid: SidOpt = None,
    auth_token: TokenOpt = None,
    phone: PhoneOpt = None,
    webhook_url: WebhookOpt = None,
    default_reply: DefaultReplyOpt = None,
    help_text: HelpTextOpt = None,
    base_url: BaseUrlOpt = None,
    reply_timeout: TimeoutOpt = None,
    rules: RulesOpt = None,
    as_json: AsJson = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Create a bot; prints the inbound webhook URL to configure on the Twilio number."""
    body = _body(
        name, account_sid, auth_token, phone, webhook_url, default_reply, help_text, base_url,
        reply_timeout, rules,
    )  # fmt: skip
    with api_client(url, api_key) as client:
        bot = api_call(client, "POST", "/api/v1/bots", json=body)
    _show(bot, as_json, "created")


# The same options as create: Typer reads a command's options from its own signature.
@bots_app.command("update")
def update(
    bot_id: Annotated[str, typer.Argument(help="The bot's id.")],
    name: NameOpt = None,
    account_sid: SidOpt = None,
    auth_token: TokenOpt = None,
    phone: PhoneOpt = None,
    webhook_url: WebhookOpt = None,
    default_reply: DefaultReplyOpt = None,
    help_text: HelpTextOpt = None,
    base_url: BaseUrlOpt = None,
    reply_timeout: TimeoutOpt = None,
    rules: RulesOpt = None,
    as_json: AsJson = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Change any of a bot's fields; those not given stay as they are."""
    body = _body(
        name, account_sid, auth_token, phone, webhook_url, default_reply, help_text, base_url,
        reply_timeout, rules,
    )  # fmt: skip
    if not body:
        raise fail("nothing to change: give at least one option (see --help).")
    with api_client(url, api_key) as client:
        bot = api_call(client, "PATCH", f"/api/v1/bots/{bot_id}", json=body)
    _show(bot, as_json, "updated")


@bots_app.command("list")
def list_(as_json: AsJson = False, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "") -> None:
    """List the project's bots."""
    with api_client(url, api_key) as client:
        data = api_call(client, "GET", "/api/v1/bots")
    if as_json:
        console.print_json(data=data)
        return
    table = listing("id", "name", "phone", "answers with", "inbound webhook URL")
    for bot in data["items"]:
        answers = [
            label
            for label, on in (
                ("webhook", bot["webhookUrl"]),
                (f"{len(bot['rules'])} rules", bot["rules"]),
                ("default reply", bot["defaultReply"]),
            )
            if on
        ]
        table.add_row(
            bot["id"], escape(bot["name"]), bot["phone"], ", ".join(answers) or "-",
            bot["inboundWebhookUrl"],
        )  # fmt: skip
    console.print(table)


@bots_app.command("delete")
def delete(
    bot_id: Annotated[str, typer.Argument(help="The bot's id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Delete a bot and its conversations (its sender stays)."""
    with api_client(url, api_key) as client:
        api_call(client, "DELETE", f"/api/v1/bots/{bot_id}")
    console.print(f"Bot {escape(bot_id)} deleted.")


@bots_app.command("conversations")
def conversations(
    bot_id: Annotated[str, typer.Argument(help="The bot's id.")],
    as_json: AsJson = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """List a bot's conversations, most recently active first."""
    with api_client(url, api_key) as client:
        data = api_call(client, "GET", f"/api/v1/bots/{bot_id}/conversations")
    if as_json:
        console.print_json(data=data)
        return
    table = listing("id", "with", "status", "unread", "last message")
    for c in data["items"]:
        last = c["lastMessage"] or {}
        table.add_row(
            c["id"], c["address"], c["status"], str(c["unreadCount"]),
            escape(f"{last.get('direction', '')}: {last.get('text') or ''}"[:60]),
        )  # fmt: skip
    console.print(table)


@bots_app.command("webchat")
def webchat(
    bot_id: Annotated[str, typer.Argument(help="The bot's id.")],
    visitor: Annotated[
        str | None,
        typer.Option(
            "--visitor",
            help="Your user's id: prints the tag that lets them chat as themselves. "
            "Without it, the tag for anonymous visitors.",
        ),
    ] = None,
    as_json: AsJson = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """The script tag that puts the bot's web chat on your site."""
    with api_client(url, api_key) as client:
        if visitor is None:
            bot = api_call(client, "GET", f"/api/v1/bots/{bot_id}")
            data = {"botId": bot["id"], **bot["webchat"]}
        else:
            data = api_call(
                client,
                "POST",
                f"/api/v1/bots/{bot_id}/webchat/visitors",
                json={"visitorId": visitor},
            )
    if as_json:
        console.print_json(data=data)
        return
    print(data["snippet"])  # plain, so it can be piped into a page
