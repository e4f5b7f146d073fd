"""Encryption of secrets at rest (provider credentials, webhook secrets) with Fernet."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from herald.config import Settings


class KeyProblem(RuntimeError):
    """The installation's key cannot be read, or does not open what it encrypted."""


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
        generated = False
        if not path.exists():
            key = Fernet.generate_key()
            # O_EXCL: two processes starting together must not each write a different key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            except OSError as e:
                raise KeyProblem(f"Cannot create the key file {path}: {e}") from e
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                generated = True
        try:
            key = path.read_bytes().strip()
        except OSError as e:
            raise KeyProblem(f"Cannot read the key file {path}: {e}") from e
        return cls(key, source=f"the key file {path}", generated=generated)

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
