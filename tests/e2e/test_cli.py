"""The herald command line, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from herald.config import Settings
from tests.e2e.helpers import send_sms, wait_status, wait_up
from tests.servers import LOOPBACK_HOSTS, free_port, running_herald

HERALD = str(Path(sys.executable).parent / "herald")


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HERALD, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_projects_create_prints_json_once(tmp_path: Path) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    result = run(["projects", "create", "acme", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"projectId", "apiKey", "webhookSecret"}
    assert data["apiKey"].startswith("hrld_")
    listed = run(["projects", "list"], env, tmp_path)
    assert "acme" in listed.stdout and str(tmp_path / "cli.db") in listed.stdout
    assert data["apiKey"] not in listed.stdout  # only a prefix is ever shown again
    assert (tmp_path / "herald.key").exists()  # the generated encryption key
    # Elsewhere, listing finds no database and says so instead of making an empty one.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = run(["projects", "list"], {}, elsewhere)
    assert lost.returncode == 1 and "there is no database at" in lost.stderr
    assert list(elsewhere.iterdir()) == []


def test_names_are_shown_as_given_never_as_markup(tmp_path: Path) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    created = run(["projects", "create", "acme[/bold]"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert "acme[/bold]" in created.stdout and "hrld_" in created.stdout  # the key, shown
    listed = run(["projects", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "acme[/bold]" in listed.stdout


def test_a_key_that_cannot_open_the_database_stops_herald_before_anything_runs(
    tmp_path: Path,
) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    assert run(["projects", "create", "acme"], env, tmp_path).returncode == 0
    key = tmp_path / "herald.key"
    key.rename(tmp_path / "backup.key")
    serve = ["serve", "--port", str(free_port())]
    for command in (["worker"], ["projects", "create", "other"], serve):
        refused = run(command, env, tmp_path)
        assert refused.returncode == 1, command
        assert "cannot be decrypted" in refused.stderr and "created just now" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not key.exists()  # the wrong key it made is not left behind as a decoy
    key.write_text("not a key")
    refused = run(["worker"], env, tmp_path)
    assert refused.returncode == 1
    assert f"the key file {key} is not a Fernet key" in " ".join(refused.stderr.split())
    (tmp_path / "backup.key").rename(key)
    assert run(["projects", "create", "other"], env, tmp_path).returncode == 0


def test_serve_on_a_busy_port_says_so_in_one_line_before_making_any_file(
    tmp_path: Path,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = run(["serve", "--port", str(port)], {}, tmp_path)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in refused.stderr
    assert "herald serve --port 8001" in refused.stderr and "make run PORT=8001" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # no herald.db, no herald.key


def test_bad_configuration_is_named_in_one_line(tmp_path: Path) -> None:
    for variable, value, said in [
        ("HERALD_MAX_ATTEMPTS", "abc", "integer"),
        ("HERALD_DEFAULT_TIMEZONE", "Mars/Base", "IANA time zone"),
        ("HERALD_DATABASE_URL", "postgres://herald@127.0.0.1/herald", "postgresql+asyncpg://"),
        ("HERALD_DATABASE_URL", "sqlite:///herald.db", "sqlite+aiosqlite:///"),
    ]:
        result = run(["migrate"], {variable: value}, tmp_path)
        assert result.returncode == 1, variable
        assert variable in result.stderr and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    misspelt = run(["migrate"], {"HERALD_DATABSE_URL": "x"}, tmp_path)
    assert misspelt.returncode == 0
    assert "HERALD_DATABSE_URL (did you mean HERALD_DATABASE_URL?)" in misspelt.stderr
    # A database that cannot be reached: the error says so, without the password.
    url = "postgresql+asyncpg://herald:s3cret@127.0.0.1:1/herald"
    result = run(["migrate"], {"HERALD_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 1
    assert "could not migrate" in result.stderr and "s3cret" not in result.stderr


def test_help_is_helpful(tmp_path: Path) -> None:
    result = run(["--help"], {}, tmp_path)
    assert result.returncode == 0
    for command in ("serve", "worker", "send", "projects", "senders", "migrate"):
        assert command in result.stdout


async def test_send_shows_the_status_until_final(settings: Settings, tmp_path: Path) -> None:
    async with running_herald(settings) as herald:
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}
        ok = await asyncio.to_thread(
            run, ["send", "--to", "+15005550006", "--text", "hi from the CLI"], env, tmp_path
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "delivered" in ok.stdout
        assert ok.stdout.endswith("\n")  # piped, the live table's last line is closed
        failed = await asyncio.to_thread(
            run, ["send", "--to", "+15005550001", "--text", "hi"], env, tmp_path
        )
        assert failed.returncode == 1
        assert "21211" in failed.stdout
        bad = await asyncio.to_thread(run, ["send", "--to", "555", "--text", "hi"], env, tmp_path)
        assert bad.returncode == 1
        assert "invalid_phone" in bad.stderr
        nokey = await asyncio.to_thread(
            run,
            ["send", "--to", "+15005550006", "--text", "hi"],
            {"HERALD_URL": herald.url, "HERALD_API_KEY": ""},
            tmp_path,
        )
        assert nokey.returncode == 1
        assert "API key" in nokey.stderr


async def test_ctrl_c_while_watching_says_the_message_still_goes_out(
    settings: Settings, tmp_path: Path
) -> None:
    async with running_herald(settings, run_workers=False) as herald:  # it stays queued
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}
        watching = await asyncio.create_subprocess_exec(
            HERALD,
            *["send", "--to", "+15005550006", "--text", "watched"],
            env={**os.environ, **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        async with herald.client() as client:
            async with asyncio.timeout(30):
                while not (await client.get("/api/v1/messages")).json()["count"]:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # into the watching loop
            watching.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                _, stderr = await watching.communicate()
            assert watching.returncode == 130
            [item] = (await client.get("/api/v1/messages")).json()["items"]
        said = " ".join(stderr.decode().split())
        assert f"Message {item['id']} is queued and will be sent" in said


async def test_senders_add_list_and_remove(settings: Settings, tmp_path: Path) -> None:
    async with running_herald(settings) as herald:
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}

        async def herald_cli(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(run, list(args), env, tmp_path)

        added = await herald_cli(
            "senders", "add", "--from", "+14155550000", "--account-sid", "AC" + "c" * 32,
            "--auth-token", "t", "--base-url", "http://127.0.0.1:9",
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        sender_id = added.stdout.split()[1]
        assert sender_id in (await herald_cli("senders", "list")).stdout

        updated = await herald_cli("senders", "update", sender_id, "--rate-limit", "3")
        assert updated.returncode == 0, updated.stdout + updated.stderr
        assert "3.0/s" in updated.stdout
        idle = await herald_cli("senders", "update", sender_id)
        assert idle.returncode == 1 and "nothing to change" in idle.stderr

        removed = await herald_cli("senders", "remove", sender_id)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert "removed" in removed.stdout
        assert sender_id not in (await herald_cli("senders", "list")).stdout
        again = await herald_cli("senders", "remove", sender_id)
        assert again.returncode == 1 and "sender_not_found" in again.stderr

        # Every provider the API takes, secrets from the environment.
        env["SMTP_PASSWORD"] = "smtp-secret"
        mail = await herald_cli(
            "senders", "add", "--channel", "email", "--provider", "smtp",
            "--from", "news@example.com", "--base-url", "smtp://127.0.0.1:2525",
            "--username", "news",
        )  # fmt: skip
        assert mail.returncode == 0, mail.stdout + mail.stderr
        bot = await herald_cli(
            "senders", "add", "--channel", "telegram", "--provider", "telegram",
            "--from", "@acme_bot", "--bot-token", "123:abc",
        )  # fmt: skip
        assert bot.returncode == 0, bot.stdout + bot.stderr
        assert f"{herald.url}/webhooks/telegram/" in bot.stdout and "secret_token" in bot.stdout
        listed = (await herald_cli("senders", "list")).stdout
        assert "news@example.com" in listed and "@acme_bot" in listed
        assert "smtp-secret" not in listed and "123:abc" not in listed


async def test_serve_leaves_sending_to_workers_when_told_by_the_environment(
    tmp_path: Path,
) -> None:
    """HERALD_RUN_DISPATCHER=false, with no flag, keeps `herald serve` from sending."""
    env = {
        "HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'scaled.db'}",
        "HERALD_RUN_DISPATCHER": "false",
        "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS,
    }
    created = run(["projects", "create", "scaled", "--json"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        with log.open("ab") as out:
            processes.append(
                subprocess.Popen(
                    [HERALD, *args],
                    env={**os.environ, **env},
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    headers = {"Authorization": f"Bearer {json.loads(created.stdout)['apiKey']}"}
    try:
        start("serve", "--port", str(port))
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:
            await wait_up(client, processes[0], log)
            assert "dispatcher off" in log.read_text()
            # No HERALD_PUBLIC_URL: callbacks are told to come back to this very port.
            assert f"public URL http://127.0.0.1:{port};" in log.read_text()
            message_id = await send_sms(client, "+15005550006", "for a worker")
            # The sandbox answers at once: an in-process dispatcher would be done by now.
            await asyncio.sleep(1.0)
            waiting = (await client.get(f"/api/v1/messages/{message_id}")).json()
            assert waiting["status"] == "queued"
            start("worker")
            done = await wait_status(client, message_id, timeout=30)
            assert done["status"] == "delivered"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
