"""The generated key file (herald.key): written whole or not at all, and a damaged one is
named with what to do about it."""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.services.vault import KeyProblem, Vault


def settings_for(path: Path) -> Settings:
    return Settings(secret_key=None, secret_key_file=path)


def test_the_key_is_made_once_with_mode_0600_and_nothing_else_is_left(tmp_path: Path) -> None:
    path = tmp_path / "herald.key"
    vault = Vault.from_settings(settings_for(path))
    assert vault.generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Fernet(path.read_bytes())  # a whole key
    assert [p.name for p in tmp_path.iterdir()] == ["herald.key"]  # no temporary file
    again = Vault.from_settings(settings_for(path))
    assert not again.generated
    assert again.decrypt(vault.encrypt("secret")) == "secret"


def test_processes_starting_together_all_use_one_key(tmp_path: Path) -> None:
    path = tmp_path / "herald.key"
    vaults: list[Vault] = []
    start = threading.Barrier(8)

    def open_vault() -> None:
        start.wait()
        vaults.append(Vault.from_settings(settings_for(path)))

    threads = [threading.Thread(target=open_vault) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(vaults) == 8 and sum(v.generated for v in vaults) == 1
    token = vaults[0].encrypt("secret")
    assert all(v.decrypt(token) == "secret" for v in vaults)
    assert [p.name for p in tmp_path.iterdir()] == ["herald.key"]


def test_a_process_killed_while_writing_the_key_leaves_no_key_file(tmp_path: Path) -> None:
    """Stopped between creating the file and writing it, the old code left an empty
    herald.key that no later start could use."""
    path = tmp_path / "herald.key"
    # The process stops for good while writing the key, as a power cut would stop it.
    script = textwrap.dedent(
        f"""
        import os, signal
        opened = os.fdopen

        class Dying:
            def __init__(self, f):
                self.f = f
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                self.f.close()
            def write(self, data):
                os.kill(os.getpid(), signal.SIGKILL)

        os.fdopen = lambda *args, **kwargs: Dying(opened(*args, **kwargs))
        from herald.config import Settings
        from herald.services.vault import Vault
        Vault.from_settings(Settings(secret_key=None, secret_key_file={str(path)!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr
    assert not path.exists()
    # The next start makes a whole key.
    assert Vault.from_settings(settings_for(path)).generated
    Fernet(path.read_bytes())


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (Fernet.generate_key()[:20], "is cut short: 20 of the key's 44 characters"),
    ],
)
def test_an_empty_or_cut_short_key_file_is_named_with_what_to_do(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "herald.key"
    path.write_bytes(content)
    with pytest.raises(KeyProblem) as refused:
        Vault.from_settings(settings_for(path))
    message = str(refused.value)
    assert f"The key file {path} {said}" in message
    assert "Restore it from your backup" in message and "delete the file" in message
    assert path.read_bytes() == content  # left as it was for the operator to look at


def test_a_key_file_that_is_no_key_at_all(tmp_path: Path) -> None:
    path = tmp_path / "herald.key"
    path.write_text("not a key")
    with pytest.raises(KeyProblem, match="is not a Fernet key"):
        Vault.from_settings(settings_for(path))


def test_a_directory_that_cannot_hold_the_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "herald.key"
    with pytest.raises(KeyProblem, match=f"Cannot create the key file {path}"):
        Vault.from_settings(settings_for(path))
