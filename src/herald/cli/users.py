"""``herald users``: the people who sign in to the cabinet and TWIN's IAM.

These commands open the database directly, like ``herald projects``: the first admin has no
one to ask for an invitation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape

from herald.cli.http import fail
from herald.cli.output import console, listing

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from herald.config import Settings

T = TypeVar("T")

users_app = typer.Typer(
    help="People who sign in to the web cabinet and to TWIN's IAM (auth/login): create the "
    "first admin, list a project's users, disable one.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[
    str, typer.Option("--project", "-p", help="The project's name or id ('herald projects list').")
]


def sign_in_url(settings: Settings, token: str) -> str:
    """The cabinet's page that spends a one-time sign-in link."""
    return f"{settings.public_url.rstrip('/')}/sign-in/link/{token}"


def _run(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> tuple[T, Settings]:
    """Migrate, open Herald, run ``work`` in one transaction; a HeraldError becomes one line."""
    # The CLI's entry module holds the shared openers; imported here, as it imports this one.
    from herald.cli.main import _migrate, _opened, _settings
    from herald.errors import HeraldError

    settings = _settings()
    _migrate(settings)

    async def main() -> T:
        herald = await _opened(settings)
        try:
            async with herald.sessions() as session, session.begin():
                return await work(session, settings)
        finally:
            await herald.aclose()

    try:
        return asyncio.run(main()), settings
    except HeraldError as e:
        raise fail(e.message) from e


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The person's e-mail address (their login).")],
    project: ProjectOpt,
    role: Annotated[
        str,
        typer.Option(
            help="admin (senders, keys, users), operator (send, tasks, templates, cancel) or "
            "viewer (read only)."
        ),
    ] = "operator",
    password: Annotated[
        str | None,
        typer.Option(
            help="Set this password (10+ characters) instead of printing a sign-in link: for "
            "scripts and tests. It shows in the shell's history; prefer the link."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Create a user; prints a one-time sign-in link (valid 7 days) unless --password is given.

    Example: herald users create ann@example.com --project acme --role admin
    """
    from herald.services import users

    async def work(session: AsyncSession, settings: Settings) -> dict[str, str | None]:
        found = await users.find_project(session, project)
        user = await users.create_user(session, found.id, email, role, password)
        link = None if password is not None else await users.sign_in_link(session, user)
        return {
            "userId": user.id,
            "email": user.email,
            "role": user.role,
            "projectId": found.id,
            "signInUrl": sign_in_url(settings, link) if link else None,
        }

    result, _ = _run(work)
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"User [bold]{escape(str(result['email']))}[/bold] ({result['role']}) created in "
        f"project {result['projectId']}."
    )
    if result["signInUrl"]:
        console.print(
            "Send them this one-time sign-in link (valid 7 days); it asks for a password:"
        )
        # Printed bare, so no wrapping or markup breaks it when copied.
        print(result["signInUrl"])
    else:
        console.print("They can sign in with the password given.")


@users_app.command("link")
def users_link(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
) -> None:
    """Print a new one-time sign-in link for an existing user (a forgotten password)."""
    from herald.services import users

    async def work(session: AsyncSession, settings: Settings) -> str:
        user = await users.find_user(session, email)
        if user.disabled_at is not None:
            from herald.errors import Conflict

            raise Conflict(f"{user.email} is disabled.", code="user_disabled")
        return sign_in_url(settings, await users.sign_in_link(session, user))

    url, _ = _run(work)
    print(url)


@users_app.command("list")
def users_list(project: ProjectOpt) -> None:
    """List a project's users, oldest first."""
    from herald.services import users

    async def work(session: AsyncSession, settings: Settings) -> list[tuple[str, ...]]:
        found = await users.find_project(session, project)
        return [
            (
                u.id,
                u.email,
                u.role,
                "yes" if u.password_hash else "no (link only)",
                u.disabled_at.isoformat() if u.disabled_at else "",
                u.created_at.isoformat(),
            )
            for u in await users.list_users(session, found.id)
        ]

    rows, settings = _run(work)
    table = listing(
        "userId",
        "email",
        "role",
        "password",
        "disabled",
        "created",
        caption=f"in {settings.shown_database_url}",
    )
    for row in rows:
        table.add_row(*row)
    console.print(table)


@users_app.command("disable")
def users_disable(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
) -> None:
    """Stop a user from signing in; their web sessions and IAM tokens stop working at once."""
    from herald.services import users

    async def work(session: AsyncSession, settings: Settings) -> str:
        user = await users.find_user(session, email)
        await users.disable(session, user)
        return user.email

    address, _ = _run(work)
    console.print(f"User [bold]{escape(address)}[/bold] is disabled and signed out everywhere.")
