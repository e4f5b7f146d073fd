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
from herald.cli.senders import senders_app
from herald.cli.tasks import tasks_app
from herald.cli.templates import templates_app
from herald.cli.users import users_app
from herald.config import Settings, unknown_variables

if TYPE_CHECKING:
    from herald.bootstrap import Herald

app = typer.Typer(help="Herald: self-hosted multi-channel notifications.", no_args_is_help=True)
projects_app = typer.Typer(
    help="Create and list projects (tenants and their API keys).", no_args_is_help=True
)
app.add_typer(projects_app, name="projects")
app.add_typer(senders_app, name="senders")
app.add_typer(templates_app, name="templates")
app.add_typer(tasks_app, name="tasks")
app.add_typer(bots_app, name="bots")
app.add_typer(messages_app, name="messages")
app.add_typer(users_app, name="users")


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
