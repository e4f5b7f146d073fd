"""``herald tasks``: bulk sending from CSV and XLSX files through the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from herald.cli.http import KeyOpt, UrlOpt, api_call, api_client, check, fail
from herald.cli.output import console, err, listing

tasks_app = typer.Typer(
    help="Send in bulk from a CSV or XLSX file: samples, upload, progress, pause, results.",
    no_args_is_help=True,
)

DEFAULT_URL = "http://127.0.0.1:8000"
ENDED = ("cancelled", "done", "failed")
FormatOpt = Annotated[str, typer.Option("--format", help="csv or xlsx.")]
OutOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Where to save the file.")]


class _ProgressReader:
    """A file whose reads advance a progress bar: the upload's progress."""

    def __init__(self, file: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._file, self._progress, self._task = file, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


def _download(url: str, api_key: str, path: str, output: Path, **params: str) -> None:
    """Save the file the API answers at ``path`` to ``output``."""
    with api_client(url, api_key) as client:
        try:
            response = client.get(path, params=params)
        except httpx.HTTPError as e:
            raise fail(f"cannot reach Herald at {client.base_url}: {e}") from e
        check(response)
    output.write_bytes(response.content)
    console.print(f"Saved {output}")


def _counts(status: dict[str, Any]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(status["messages"].items())) or "no messages"


def _watch(client: httpx.Client, task_id: str, *, until_imported: bool = False) -> dict[str, Any]:
    """Bars for rows imported and messages processed, until the task ends (or is imported)."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    status: dict[str, Any] = api_call(client, "GET", f"/api/v1/tasks/{task_id}/statuses")
    with Progress(*columns, console=console) as progress:
        rows = progress.add_task("import", total=None, detail="")
        sending = progress.add_task("sending", total=None, detail="", visible=not until_imported)
        while True:
            detail = f"{status['rowsAccepted']} accepted, {status['rowsRejected']} rejected"
            progress.update(
                rows,
                completed=status["rowsRead"],
                total=status["rowsRead"] if status["imported"] else None,
                detail=detail,
            )
            rate = status["ratePerSecond"]
            progress.update(
                sending,
                completed=status["totalProcessedMessageCount"],
                total=status["totalMessageCount"] or None,
                detail=f"{status['status']}; {_counts(status)}; {rate}/s",
            )
            if status["status"] in ENDED or (until_imported and status["imported"]):
                return status
            if status["status"] in ("ready", "paused") and not until_imported:
                return status
            time.sleep(0.5)
            status = api_call(client, "GET", f"/api/v1/tasks/{task_id}/statuses")


def _task_body(
    name: str,
    template: str | None,
    policy: str,
    region: str | None,
    send_at: str | None,
    short_links: bool,
    callback_url: str | None,
    validity: int | None,
    sender: str | None,
    channels: str | None = None,
) -> dict[str, Any]:
    # --from and --validity belong to the first channel (SMS unless --channels says).
    keys = [k.strip().lower() for k in (channels or "").split(",") if k.strip()]
    first: dict[str, Any] = {}
    if validity is not None:
        first["validityPeriod"] = validity
    if sender:
        first["from"] = sender
    settings: dict[str, Any] = {}
    if keys:
        settings["channels"] = {k: dict(first) if i == 0 else {} for i, k in enumerate(keys)}
    elif first:
        settings["channels"] = {"sms": first}
    if send_at:
        settings["sendAt"] = send_at
    if short_links:
        settings["useShortLinks"] = True
    if callback_url:
        settings["callbackUrl"] = callback_url
    body: dict[str, Any] = {"name": name, "policy": policy, "settings": settings}
    if template:
        body["templateId"] = template
    if region:
        body["defaultRegion"] = region
    return body


@tasks_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    template: Annotated[
        str | None, typer.Option("--template", help="Template id; without one, a 'text' column.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Task name (the file name if omitted).")] = None,
    policy: Annotated[
        str, typer.Option(help="send_valid (skip bad rows) or reject_all (any bad row stops it).")
    ] = "send_valid",
    region: Annotated[
        str | None, typer.Option("--region", help="Region for numbers without +, e.g. RU.")
    ] = None,
    send_at: Annotated[str | None, typer.Option("--send-at", help="ISO 8601 time.")] = None,
    short_links: Annotated[bool, typer.Option("--short-links", help="Shorten links.")] = False,
    callback_url: Annotated[str | None, typer.Option("--callback-url")] = None,
    validity: Annotated[int | None, typer.Option(help="Validity period, minutes.")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="Sender to use.")] = None,
    channels: Annotated[
        str | None,
        typer.Option(help="Channels in cascade order, e.g. email,sms (default: the template's)."),
    ] = None,
    start: Annotated[bool, typer.Option(help="Start sending once imported.")] = True,
    watch: Annotated[bool, typer.Option(help="Show progress until the task ends.")] = True,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Create a task from FILE (CSV or XLSX), import it, start it and show its progress."""
    body = _task_body(
        name or file.name, template, policy, region, send_at, short_links, callback_url,
        validity, sender, channels,
    )  # fmt: skip
    with api_client(url, api_key) as client:
        client.timeout = httpx.Timeout(600)
        task_id = api_call(client, "POST", "/api/v1/tasks", json=body)["id"]
        console.print(f"Task [bold]{task_id}[/bold]")
        size = file.stat().st_size
        with (
            file.open("rb") as f,
            Progress(
                TextColumn("upload"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=console,
            ) as progress,
        ):  # fmt: skip
            bar = progress.add_task("upload", total=size)
            api_call(
                client,
                "POST",
                f"/api/v1/tasks/{task_id}",
                files={"messages": (file.name, _ProgressReader(f, progress, bar))},
                data={"async": "1"},
            )
        status = _watch(client, task_id, until_imported=True)
        if status["rowsRejected"]:
            err.print(f"{status['rowsRejected']} row(s) rejected: herald tasks report {task_id}")
        if status["status"] == "failed":
            raise fail(status["error"]["message"] if status["error"] else "the import failed")
        if start:
            api_call(client, "POST", f"/api/v1/startedTasks/{task_id}", json=[])
            if watch:
                _watch(client, task_id)
        console.print(f"herald tasks watch {task_id}  |  herald tasks results {task_id}")


@tasks_app.command("watch")
def watch_task(task_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "") -> None:
    """Show a task's import and sending progress until it ends or pauses."""
    with api_client(url, api_key) as client:
        status = _watch(client, task_id)
    console.print(f"{task_id}: {status['status']} ({_counts(status)})")


@tasks_app.command("list")
def list_tasks(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "") -> None:
    """Tasks, newest first."""
    with api_client(url, api_key) as client:
        data = api_call(client, "GET", "/api/v1/tasks", params={"limit": 100})
    table = listing(
        "id", "name", "status", "rows", "rejected", "messages", "progress",
        title=f"{data['count']} task(s)",
    )  # fmt: skip
    for t in data["items"]:
        table.add_row(
            t["id"],
            escape(t["name"]),
            t["status"],
            str(t["rowsRead"]),
            str(t["rowsRejected"]),
            str(t["totalMessageCount"]),
            f"{t['progress']}%",
        )
    console.print(table)


def _control(method: str, path: str, done: str) -> Any:
    def command(task_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "") -> None:
        with api_client(url, api_key) as client:
            api_call(client, method, path.format(task_id=task_id), json=[])
        console.print(f"{task_id}: {done}")

    return command


tasks_app.command("start", help="Start sending an imported task.")(
    _control("POST", "/api/v1/startedTasks/{task_id}", "started")
)
tasks_app.command("pause", help="Hold every message not yet sent.")(
    _control("POST", "/api/v1/pausedTasks/{task_id}", "paused")
)
tasks_app.command("resume", help="Resume a paused task.")(
    _control("DELETE", "/api/v1/pausedTasks/{task_id}", "resumed")
)
tasks_app.command("cancel", help="Cancel every message not yet sent.")(
    _control("POST", "/api/v1/tasks/{task_id}/cancel", "cancelled")
)
tasks_app.command("delete", help="Delete a task (unsent messages are cancelled).")(
    _control("DELETE", "/api/v1/tasks/{task_id}", "deleted")
)


@tasks_app.command("sample")
def sample(
    template: Annotated[str, typer.Option("--template", help="Template id.")],
    channels: Annotated[
        str | None, typer.Option(help="Channels to send on, e.g. email,sms (default: all).")
    ] = None,
    fmt: FormatOpt = "xlsx",
    output: OutOpt = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Download a file with exactly the columns the template needs, and one example row."""
    target = output or Path(f"sample.{fmt}")
    params = {"format": fmt, **({"channels": channels} if channels else {})}
    _download(url, api_key, f"/api/v1/templates/{template}/sample", target, **params)


def _rows_file(kind: str) -> Any:
    # Its options are those of `sample` too: Typer reads each command's from its signature.
    def command(
        task_id: str,
        fmt: FormatOpt = "csv",
        output: OutOpt = None,
        url: UrlOpt = DEFAULT_URL,
        api_key: KeyOpt = "",
    ) -> None:
        target = output or Path(f"{task_id}-{kind}.{fmt}")
        _download(url, api_key, f"/api/v1/tasks/{task_id}/{kind}", target, format=fmt)

    return command


tasks_app.command("report", help="Download the rejected rows with an 'error' column.")(
    _rows_file("report")
)
tasks_app.command(
    "results",
    help="Download each row's outcome: message id, status, provider error, segments, price.",
)(_rows_file("results"))
