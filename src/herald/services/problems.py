"""Collecting every problem of a request, so a client can fix them all in one go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from herald.errors import ValidationFailed


@dataclass
class Problems:
    """The problems found so far; :meth:`raise_if_any` turns them into one 422.

    Each item is ``{"path", "message", "code"}`` plus any extra keys given to :meth:`add`
    (a template's syntax error adds ``line`` and ``column``).
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    #: Keep a problem that is said again. Templates name every occurrence (a channel asked
    #: for twice is counted twice); a message request says one literal text shared by many
    #: destinations only once.
    repeats: bool = False
    #: When every problem has the same code, the 422 carries it (templates' rule); otherwise
    #: only a single problem gives its code and several give ``validation_failed``.
    shared_code: bool = False

    def add(self, path: str, message: str, code: str, **extra: Any) -> None:
        """Note one problem at ``path`` (e.g. ``messages[0].channels.sms.text``)."""
        item = {"path": path, "message": message, "code": code, **extra}
        if self.repeats or item not in self.items:
            self.items.append(item)

    def summary(self, *, with_path: bool = True) -> str:
        """The first problem's sentence, and how many more there are."""
        first = self.items[0]
        more = f" (and {len(self.items) - 1} more problems)" if len(self.items) > 1 else ""
        said = f"{first['path']}: {first['message']}" if with_path else first["message"]
        return said + more

    def code(self) -> str:
        """The machine code of the 422 (``validation_failed`` when the problems differ)."""
        codes = {item["code"] for item in self.items}
        if len(self.items) == 1 or (self.shared_code and len(codes) == 1):
            return str(self.items[0]["code"])
        return "validation_failed"

    def raise_if_any(self) -> None:
        """A 422 naming the first problem, with every problem in ``details.errors``."""
        if not self.items:
            return
        details: dict[str, Any] = {"errors": self.items}
        # A syntax error is also placed at the top level, where a client that shows one
        # template error (with its line and column) looks for it.
        syntax = next((item for item in self.items if "line" in item), None)
        if syntax is not None:
            details.update(field=syntax["path"], line=syntax["line"], column=syntax["column"])
        raise ValidationFailed(self.summary(), code=self.code(), details=details)
