"""The CLI names a damaged herald.key and what to do, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import run


def test_an_empty_or_cut_short_key_file_stops_every_command_with_what_to_do(
    tmp_path: Path,
) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    assert run(["projects", "create", "acme"], env, tmp_path).returncode == 0
    key = tmp_path / "herald.key"
    whole = key.read_bytes()
    for content, said in [(b"", "is empty"), (whole[:30], "is cut short")]:
        key.write_bytes(content)
        for command in (["worker"], ["projects", "create", "other"], ["serve", "--port", "1"]):
            refused = run(command, env, tmp_path)
            assert refused.returncode == 1, command
            stderr = " ".join(refused.stderr.split())
            assert f"The key file {key} {said}" in stderr, stderr
            assert "Restore it from your backup" in stderr and "Traceback" not in stderr
            assert key.read_bytes() == content  # never replaced by a new key
    key.write_bytes(whole)
    assert run(["projects", "create", "other"], env, tmp_path).returncode == 0
