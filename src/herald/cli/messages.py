"""``herald messages``: what Herald told a client about a message, through the API."""

from __future__ import annotations

from typing import Annotated

import typer

from herald.cli.http import KeyOpt, UrlOpt, api_call, api_client
from herald.cli.output import PlainTable, console

messages_app = typer.Typer(
    help="Look into messages and their status callbacks.", no_args_is_help=True
)


# Same shape as every API command (an id, --url, --api-key, one call): typer reads each
# command's own signature, so the declarations stay.
@messages_app.command("callbacks")
def callbacks(
    message_id: Annotated[str, typer.Argument(help="The message's id.")],
    url: UrlOpt = "http://127.0.0.1:8000",
    api_key: KeyOpt = "",
) -> None:
    """Every status callback of a message, in sequence, with each attempt to deliver it."""
    with api_client(url, api_key) as client:
        data = api_call(client, "GET", f"/api/v1/messages/{message_id}/callbacks")
    table = PlainTable(title=f"Callbacks of message {message_id}")
    for header in ("#", "status", "state", "attempt at", "http", "answer or error"):
        table.add_column(header)
    urls = {item["url"] for item in data["items"]}
    for item in data["items"]:
        first = True
        for attempt in item["attempts"] or [None]:
            answer = ""
            if attempt is not None:
                answer = attempt["error"] or (attempt["response"] or "").strip()
            table.add_row(
                str(item["sequence"]) if first else "",
                item["status"] if first else "",
                item["state"] if first else "",
                attempt["at"] if attempt else f"due {item['nextAttemptAt'] or '-'}",
                str(attempt["httpStatus"] or "-") if attempt else "",
                answer[:80],
            )
            first = False
    if len(urls) == 1:
        table.caption = f"to {urls.pop()}"
    elif not urls:
        table.caption = (
            "No callbacks: the message has no callbackUrl, or its status has not changed."
        )
    console.print(table)
