"""The ``herald`` command line."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from herald.cli.bots import bots_app
from herald.cli.http import KeyOpt, UrlOpt
from herald.cli.http import api_call as _call
from herald.cli.http import api_client as _client
from herald.cli.http import fail as _fail
from herald.cli.messages import messages_app
from herald.cli.output import PlainTable, console, err, listing
from herald.cli.tasks import tasks_app
from herald.cli.templates import templates_app
from herald.config import Settings, unknown_variables

if TYPE_CHECKING:
    from herald.bootstrap import Herald

app = typer.Typer(help="Herald: self-hosted multi-channel notifications.", no_args_is_help=True)
projects_app = typer.Typer(
    help="Create and list projects (tenants and their API keys).", no_args_is_help=True
)
senders_app = typer.Typer(
    help="Register, list, change and remove the provider accounts a project sends from.",
    no_args_is_help=True,
)
app.add_typer(projects_app, name="projects")
app.add_typer(senders_app, name="senders")
app.add_typer(templates_app, name="templates")
app.add_typer(tasks_app, name="tasks")
app.add_typer(bots_app, name="bots")
app.add_typer(messages_app, name="messages")


FINAL = {"delivered", "read", "undelivered", "failed", "cancelled", "expired"}


def _settings() -> Settings:
    """The HERALD_* settings, or one line per bad variable instead of a traceback."""
    for name in unknown_variables(os.environ):
        err.print(f"[yellow]warning:[/yellow] {escape(name)} is not a Herald setting; ignored.")
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"HERALD_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in e.errors()
        )
        raise _fail(f"bad configuration: {problems}") from None


def _migrate(settings: Settings) -> None:
    from herald.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as e:
        # The driver's message may quote the URL, password and all.
        reason = str(e).replace(settings.database_url, settings.shown_database_url)
        raise _fail(f"could not migrate {settings.shown_database_url}: {reason}") from e


async def _opened(settings: Settings) -> Herald:
    """Herald's parts, once its key is known to open the database's secrets."""
    from herald.bootstrap import build, check_key
    from herald.services.vault import KeyProblem

    try:
        herald = build(settings)
    except KeyProblem as e:
        raise _fail(str(e)) from e
    try:
        await check_key(herald)
    except KeyProblem as e:
        await herald.aclose()
        raise _fail(str(e)) from e
    return herald


@app.command()
def migrate() -> None:
    """Bring the database (HERALD_DATABASE_URL) to the newest schema."""
    settings = _settings()
    _migrate(settings)
    console.print(f"Database is up to date: {settings.shown_database_url}")


async def _closed(opening: Awaitable[Herald]) -> None:
    await (await opening).aclose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[
        bool | None,
        typer.Option(
            "--workers/--no-workers",
            help="Run the dispatcher inside this process (turn off when running 'herald worker's). "
            "Default: HERALD_RUN_DISPATCHER, which is true unless set.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Migrate the database, then serve the API (and, by default, send messages)."""
    import uvicorn

    from herald.api.app import create_app
    from herald.cli.logs import log_config

    # Taken before the database and the key file are made, and held until uvicorn listens
    # on it: a busy port stops the start with nothing left behind, and cannot be taken
    # in between.
    listening = _bound_socket(host, port)
    if "HERALD_PUBLIC_URL" not in os.environ:
        # Callbacks must reach this very process: --port 8001 alone would otherwise leave
        # Twilio reporting to :8000.
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["HERALD_PUBLIC_URL"] = f"http://{f'[{local}]' if ':' in local else local}:{port}"
    settings = _settings()
    _migrate(settings)
    asyncio.run(_closed(_opened(settings)))
    dispatching = settings.run_dispatcher if workers is None else workers
    err.print(
        f"Herald on http://{host}:{port} (API docs at /docs), database "
        f"{settings.shown_database_url}, public URL {settings.public_url}; dispatcher "
        + ("inside this process" if dispatching else "off: run 'herald worker' to send")
    )
    config = uvicorn.Config(
        create_app(run_workers=dispatching),
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(),
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[listening])
    if not server.started:  # uvicorn.run's own exit when the app failed to start
        raise typer.Exit(code=3)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one, or one line saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            other = 8001 if port != 8001 else 8002
            raise _fail(
                f"port {port} on {host} is already in use (another Herald?): stop that server, "
                f"or choose another port: herald serve --port {other}, or make run PORT={other}."
            ) from None
        raise _fail(f"cannot listen on {host}:{port}: {e.strerror or e}.") from None
    return sock


@app.command()
def worker() -> None:
    """Run a dispatcher process: claims due messages from the database and sends them."""
    from herald.bootstrap import settle_after_start
    from herald.dispatch.callbacks import CallbackSender
    from herald.dispatch.loop import Dispatcher

    settings = _settings()
    _migrate(settings)

    async def main() -> None:
        herald = await _opened(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        dispatcher = Dispatcher(herald)
        callbacks = CallbackSender(herald)
        err.print(f"Herald worker {dispatcher.worker_id} on {settings.shown_database_url}")
        settle_after_start()
        try:
            await asyncio.gather(dispatcher.run(stop), callbacks.run(stop))
        finally:
            await callbacks.aclose()
            await herald.aclose()

    # The loop `herald serve` gets from uvicorn: a worker is all sockets and callbacks.
    with asyncio.Runner(loop_factory=_fast_event_loop()) as runner:
        runner.run(main())


def _fast_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not built for this platform: asyncio's own loop does the same job
        return None
    return uvloop.new_event_loop


@projects_app.command("create")
def projects_create(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Create a project; prints its API key and webhook secret (shown only this once)."""
    from herald.errors import HeraldError
    from herald.services.projects import create_project

    settings = _settings()
    _migrate(settings)

    async def main() -> dict[str, str]:
        herald = await _opened(settings)  # a wrong key would seal the new project's secret
        try:
            async with herald.sessions() as session, session.begin():
                created = await create_project(session, herald.vault, name)
        finally:
            await herald.aclose()
        return {
            "projectId": created.project_id,
            "apiKey": created.api_key,
            "webhookSecret": created.webhook_secret,
        }

    try:
        result = asyncio.run(main())
    except HeraldError as e:
        raise _fail(e.message) from e
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"Project [bold]{escape(name)}[/bold] created in {escape(settings.shown_database_url)}."
    )
    console.print(f"  projectId:     {result['projectId']}")
    console.print(f"  apiKey:        [bold]{result['apiKey']}[/bold]")
    console.print(f"  webhookSecret: {result['webhookSecret']}")
    console.print(
        "Keep the API key now: Herald stores only its hash. It sends through the "
        "sandbox until you add a sender ('herald senders add --help')."
    )


@projects_app.command("rotate-secret")
def projects_rotate_secret(
    name: Annotated[str, typer.Argument(help="The project's name (see 'herald projects list').")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Give a project a new webhook secret (shown only this once); the old one stops at once."""
    from herald.errors import HeraldError
    from herald.services.projects import rotate_webhook_secret

    settings = _settings()
    _migrate(settings)

    async def main() -> str:
        herald = await _opened(settings)
        try:
            async with herald.sessions() as session, session.begin():
                return await rotate_webhook_secret(session, herald.vault, name)
        finally:
            await herald.aclose()

    try:
        secret = asyncio.run(main())
    except HeraldError as e:
        raise _fail(e.message) from e
    if as_json:
        print(json.dumps({"webhookSecret": secret}))
        return
    console.print(f"Project [bold]{escape(name)}[/bold] has a new webhook secret.")
    console.print(f"  webhookSecret: {secret}")
    console.print(
        "Callbacks are signed with it from now on: give it to your receiver "
        "(Standard Webhooks libraries take it as it is)."
    )


@projects_app.command("list")
def projects_list() -> None:
    """List projects (API keys are not shown: only their first characters)."""
    from herald.services.projects import list_projects

    settings = _settings()
    database = settings.sqlite_path
    if database is not None and not database.exists():
        # Listing never creates: an empty table would suggest the projects were lost.
        raise _fail(
            f"there is no database at {database}. Run herald where 'herald serve' runs, or "
            "set HERALD_DATABASE_URL to its database."
        )
    _migrate(settings)

    async def main() -> list[tuple[str, str, str, str]]:
        herald = await _opened(settings)
        try:
            async with herald.sessions() as session:
                return [
                    (p.id, p.name, p.api_key_prefix + "…", p.created_at.isoformat())
                    for p in await list_projects(session)
                ]
        finally:
            await herald.aclose()

    table = listing(
        "projectId", "name", "apiKey", "created", caption=f"in {settings.shown_database_url}"
    )
    for row in asyncio.run(main()):
        table.add_row(*row)
    console.print(table)


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
    from herald.services.senders import ACCOUNT_FIELDS

    used = ACCOUNT_FIELDS.get(provider.lower(), ())
    for name, key in _ACCOUNT_OPTIONS.items():
        # A secret exported for another provider (TWILIO_ACCOUNT_SID in a Twilio user's
        # shell) is not this sender's. One typed on the command line is sent, and refused.
        source = ctx.get_parameter_source(name)
        if key not in used and source is not None and source.name == "ENVIRONMENT":
            body[key] = None
    with _client(url, api_key) as client:
        sender = _call(
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
    with _client(url, api_key) as client:
        data = _call(client, "GET", "/api/v1/senders")
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
        raise _fail("give --rate-limit or --no-rate-limit, not both")
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
        raise _fail("nothing to change: see 'herald senders update --help'")
    with _client(url, api_key) as client:
        sender = _call(client, "PATCH", f"/api/v1/senders/{sender_id}", json=changes)
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
    with _client(url, api_key) as client:
        _call(client, "DELETE", f"/api/v1/senders/{sender_id}")
    console.print(f"Sender {sender_id} removed; its messages' history stays.")


def _status_table(message: dict[str, Any]) -> Table:
    table = PlainTable(title=f"Message {message['id']} → {message['destination'].get('phone')}")
    table.add_column("time")
    table.add_column("status")
    table.add_column("source")
    table.add_column("detail")
    for event in message.get("history", []):
        table.add_row(event["at"], event["status"], event["source"], event["detail"] or "")
    error = message.get("error")
    if error:
        more = error.get("moreInfo") or ""
        table.caption = Text(f"error {error['code']}: {error['message']} {more}")
    elif message["provider"]["messageId"]:
        p = message["provider"]
        table.caption = f"{p['name']} id {p['messageId']}, {p['numSegments']} segment(s)"
    return table


@app.command()
def send(
    to: Annotated[str, typer.Option(help="Recipient phone number, E.164.")],
    text: Annotated[str, typer.Option(help="Message text.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Sender (default sender if omitted).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to watch the status.", min=0)] = 120.0,
    url: UrlOpt = "http://127.0.0.1:8000",
    api_key: KeyOpt = "",
) -> None:
    """Send an SMS through the API and show its status live until it is final."""
    sms: dict[str, Any] = {"text": text}
    if from_:
        sms["from"] = from_
    with _client(url, api_key) as client:
        results = _call(
            client,
            "POST",
            "/api/v1/messages",
            json={"messages": [{"destinations": [{"phone": to}], "channels": {"sms": sms}}]},
        )
        message_id = results[0]["id"]
        deadline = time.monotonic() + wait
        message = _call(client, "GET", f"/api/v1/messages/{message_id}")
        try:
            with Live(_status_table(message), console=console, refresh_per_second=4) as live:
                while message["status"] not in FINAL and time.monotonic() < deadline:
                    time.sleep(0.5)
                    message = _call(client, "GET", f"/api/v1/messages/{message_id}")
                    live.update(_status_table(message))
        except KeyboardInterrupt:
            # Only the watching stops: the message was accepted and goes out all the same.
            if not console.is_terminal:
                console.line()
            err.print(
                f"Stopped watching. Message {message_id} is {message['status']} and will be "
                f"sent; cancel it with DELETE /api/v1/messages/{message_id} before it is "
                "final."
            )
            raise typer.Exit(code=130) from None
        if not console.is_terminal:
            console.line()  # Live leaves its last line open when writing to a pipe or file
    if message["status"] not in FINAL:
        err.print(
            f"Still {message['status']} after {wait:.0f}s; check later with "
            f"GET /api/v1/messages/{message_id}."
        )
        raise typer.Exit(code=2)
    if message["status"] not in ("delivered", "read"):
        raise typer.Exit(code=1)


def main() -> None:  # pragma: no cover - console entry for `python -m herald`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # type: ignore[func-returns-value]
