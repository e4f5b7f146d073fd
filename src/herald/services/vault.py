"""Encryption of secrets at rest (provider credentials, webhook secrets) with Fernet."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from herald.config import Settings


class Vault:
    """Encrypts and decrypts small secrets with the installation's key."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """Use HERALD_SECRET_KEY, else the key file, creating it (mode 0600) on first run."""
        if settings.secret_key:
            return cls(settings.secret_key)
        path = Path(settings.secret_key_file)
        if not path.exists():
            key = Fernet.generate_key()
            # O_EXCL: two processes starting together must not each write a different key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
        return cls(path.read_bytes().strip())

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise RuntimeError(
                "A stored secret cannot be decrypted: HERALD_SECRET_KEY (or the key file) is "
                "not the one it was encrypted with."
            ) from e

    def encrypt_json(self, value: dict[str, str]) -> str:
        return self.encrypt(json.dumps(value))

    def decrypt_json(self, token: str) -> dict[str, str]:
        data = json.loads(self.decrypt(token))
        assert isinstance(data, dict)
        return {str(k): str(v) for k, v in data.items()}
