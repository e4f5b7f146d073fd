"""``herald templates``: manage and preview message templates through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from herald.cli.http import KeyOpt, UrlOpt, api_call, api_client, fail
from herald.cli.output import console, listing

templates_app = typer.Typer(
    help="Create, edit and preview message templates (Jinja2: {{ name }}, filters, {% if %}).",
    no_args_is_help=True,
)

DEFAULT_URL = "http://127.0.0.1:8000"
# Options are declared as every CLI module declares them (typer's Annotated form).
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help='A JSON file with the TWIN template body: {"name", "channels", "allowedTimeRanges"}.',
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", help="Template name.")]
SmsTextOpt = Annotated[
    str | None, typer.Option("--sms-text", help="SMS text, e.g. 'Hi {{ name }}, code {{ code }}'.")
]


def _call(url: str, api_key: str, method: str, path: str, **kwargs: Any) -> Any:
    """One API call on a connection of its own."""
    with api_client(url, api_key) as client:
        return api_call(client, method, path, **kwargs)


def _body(file: Path | None, name: str | None, sms_text: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise fail(f"cannot read {file}: {e}") from e
        if not isinstance(loaded, dict):
            raise fail(f"{file} must hold a JSON object")
        body.update(loaded)
    if name is not None:
        body["name"] = name
    if sms_text is not None:
        channels = dict(body.get("channels") or {})
        channels["sms"] = {**(channels.get("sms") or {}), "text": sms_text}
        body["channels"] = channels
    return body


@templates_app.command("create")
def create(
    file: FileOpt = None,
    name: NameOpt = None,
    sms_text: SmsTextOpt = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Create a template from a JSON file and/or flags; prints its id.

    Syntax errors are reported with line and column, e.g.
    herald templates create --name otp --sms-text 'Your code is {{ code }}'
    """
    created = _call(url, api_key, "POST", "/api/v1/templates", json=_body(file, name, sms_text))
    console.print(f"Template [bold]{created['id']}[/bold] created (version 1).")


@templates_app.command("list")
def list_(
    name: Annotated[str | None, typer.Option(help="Only templates with this exact name.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """List the project's templates, newest first."""
    params = {"name": name} if name else {}
    data = _call(url, api_key, "GET", "/api/v1/templates", params={**params, "limit": 1000})
    table = listing("id", "name", "version", "channels", "variables", "updated")
    for t in data["items"]:
        table.add_row(
            t["id"],
            escape(t["name"]),
            str(t["version"]),
            ", ".join(t["channels"]),
            ", ".join(t["variables"]),
            t["updatedAt"] or t["createdAt"],
        )
    console.print(table)
    console.print(f"{data['count']} template(s)")


@templates_app.command("show")
def show(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    version: Annotated[int | None, typer.Option(help="An older version.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Print a template (its current version unless --version) as JSON."""
    params = {"version": version} if version else {}
    console.print_json(
        data=_call(url, api_key, "GET", f"/api/v1/templates/{template_id}", params=params)
    )


# Takes create's options again: typer reads each command's options from its own signature.
@templates_app.command("update")
def update(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    file: FileOpt = None,
    name: NameOpt = None,
    sms_text: SmsTextOpt = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Store a new version. Only what you give changes; --sms-text keeps the other channels."""
    body = _body(file, name, sms_text)
    if not body:
        raise fail("nothing to change: give --file, --name or --sms-text")
    with api_client(url, api_key) as client:
        if sms_text is not None and file is None:
            current = api_call(client, "GET", f"/api/v1/templates/{template_id}")
            channels = dict(current["channels"])
            channels["sms"] = {**channels.get("sms", {}), "text": sms_text}
            body["channels"] = channels
        updated = api_call(client, "PUT", f"/api/v1/templates/{template_id}", json=body)
    console.print(f"Template {updated['id']} is now at version {updated['version']}.")


@templates_app.command("delete")
def delete(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Delete a template (messages already sent keep their history)."""
    _call(url, api_key, "DELETE", f"/api/v1/templates/{template_id}")
    console.print(f"Template {template_id} deleted.")


def _variables(pairs: list[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--var takes name=value, not {pair!r}")
        variables[key] = value
    return variables


@templates_app.command("preview")
def preview(
    template_id: Annotated[str, typer.Argument(help="Template id.")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", "-v", help="A variable as name=value (repeat; values are text)."),
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", "-c", help="Only this channel (repeat).")
    ] = None,
    short_links: Annotated[
        bool, typer.Option("--short-links", help="Shorten links as useShortLinks would.")
    ] = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="SMS sender whose smart encoding applies.")
    ] = None,
    smart_encoding: Annotated[
        bool | None,
        typer.Option("--smart-encoding/--no-smart-encoding", help="Override the sender's setting."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Render a template with variables; for SMS show encoding, segments and what forced UCS-2."""
    body: dict[str, Any] = {"variables": _variables(var or []), "useShortLinks": short_links}
    if channel:
        body["channels"] = channel
    if from_:
        body["from"] = from_
    if smart_encoding is not None:
        body["smartEncoding"] = smart_encoding
    data = _call(url, api_key, "POST", f"/api/v1/templates/{template_id}/preview", json=body)
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    for key, content in data["channels"].items():
        table = Table(title=f"{key} (template version {data['version']})", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for field, value in content.items():
            if field == "smartEncoding" or field == "links":
                continue
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            table.add_row(field, escape(shown))
        smart = content.get("smartEncoding")
        if smart:
            table.add_row(
                "smart encoding",
                escape(
                    f"{'applied' if smart['applied'] else 'off'}: {smart['encoding']}, "
                    f"{smart['segments']} segment(s), {smart['characters']} characters"
                ),
            )
        console.print(table)
