"""Talking to a running Herald's API from the command line: options, client, errors."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from herald.cli.output import err

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="HERALD_URL", help="Base URL of a running Herald.")
]
KeyOpt = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="HERALD_API_KEY", help="The project's API key (or set HERALD_API_KEY)."
    ),
]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; raise the returned exit (code 1)."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def api_client(url: str, api_key: str) -> httpx.Client:
    """An HTTP client for the API, authenticated with the project's key."""
    api_key = api_key.strip()
    if not api_key:
        raise fail(
            "no API key: pass --api-key or set HERALD_API_KEY (from 'herald projects create')."
        )
    if not api_key.isascii() or any(c.isspace() for c in api_key):
        raise fail(
            "the API key (--api-key or HERALD_API_KEY) has spaces or non-ASCII characters in "
            "it; copy it again from 'herald projects create'."
        )
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)


def check(response: httpx.Response) -> None:
    """End the command with the API's error sentence and code if ``response`` is an error."""
    if response.status_code >= 400:
        try:
            data = response.json()
            message = f"{data.get('error')} [{data.get('code')}]"
        except ValueError:
            message = response.text
        raise fail(f"{response.status_code}: {message}")


def api_call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; a transport error or an error answer ends the command with its message."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        raise fail(
            f"cannot reach Herald at {client.base_url}: {e}. Is 'herald serve' "
            "running? (--url / HERALD_URL)"
        ) from e
    check(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as e:
        raise fail(
            f"{client.base_url} answered something other than Herald's API; is --url / "
            "HERALD_URL the address of 'herald serve'?"
        ) from e
