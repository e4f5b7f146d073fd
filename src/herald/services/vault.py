"""Encryption of secrets at rest (provider credentials, webhook secrets) with Fernet."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from herald.config import Settings


class KeyProblem(RuntimeError):
    """The installation's key cannot be read, or does not open what it encrypted."""


# A Fernet key is 32 bytes in URL-safe base64: 44 characters, the last one "=".
KEY_LENGTH = 44
_BASE64URL = re.compile(rb"[A-Za-z0-9_=-]*")


def _damaged(path: Path, what: str) -> KeyProblem:
    return KeyProblem(
        f"The key file {path} {what}. Restore it from your backup. If this installation holds "
        "no secrets yet (no project was ever created with it), delete the file instead and "
        "Herald makes a new key; otherwise the stored credentials cannot be opened without it."
    )


def _create_key_file(path: Path) -> bool:
    """Write a new key to ``path`` all at once; False when another process wrote one first.

    The key is written and synced to a temporary file in the same directory, which is then
    linked to its name: a crash at any moment leaves either no key file (the next start
    makes one) or a whole one, never an empty or half-written one that would lock the
    installation out of its secrets. Linking, unlike renaming, never replaces a key another
    process created in the meantime.
    """
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise KeyProblem(f"Cannot create the key file {path}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp makes it 0600
            f.write(Fernet.generate_key())
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError as e:
        raise KeyProblem(f"Cannot create the key file {path}: {e}") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    _sync_directory(path.parent)
    return True


def _sync_directory(directory: Path) -> None:
    """Make the new file's name durable, not only its content."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    """The key in ``path``, refusing an empty or cut-short file with what to do about it."""
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise KeyProblem(f"Cannot read the key file {path}: {e}") from e
    if not key:
        raise _damaged(path, "is empty (Herald was probably stopped while creating it)")
    if len(key) < KEY_LENGTH and _BASE64URL.fullmatch(key):
        raise _damaged(
            path, f"is cut short: {len(key)} of the key's {KEY_LENGTH} characters are there"
        )
    return key


class Vault:
    """Encrypts and decrypts small secrets with the installation's key."""

    def __init__(
        self, key: str | bytes, *, source: str = "the key", generated: bool = False
    ) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as e:
            raise KeyProblem(
                f"{source} is not a Fernet key (32 url-safe base64-encoded bytes). Restore the "
                "key this installation was set up with."
            ) from e
        self.source = source
        self.generated = generated  # made just now: a database with secrets cannot be opened

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """Use HERALD_SECRET_KEY, else the key file, creating it (mode 0600) on first run."""
        if settings.secret_key:
            return cls(settings.secret_key, source="HERALD_SECRET_KEY")
        path = Path(settings.secret_key_file)
        generated = False if path.exists() else _create_key_file(path)
        return cls(_read_key_file(path), source=f"the key file {path}", generated=generated)

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            made = " (it was created just now)" if self.generated else ""
            raise KeyProblem(
                f"A stored secret cannot be decrypted: {self.source}{made} is not the key it "
                "was encrypted with. Restore the original key: every Herald process sharing a "
                "database needs the same HERALD_SECRET_KEY or key file."
            ) from e

    def encrypt_json(self, value: dict[str, str]) -> str:
        return self.encrypt(json.dumps(value))

    def decrypt_json(self, token: str) -> dict[str, str]:
        data = json.loads(self.decrypt(token))
        assert isinstance(data, dict)
        return {str(k): str(v) for k, v in data.items()}
