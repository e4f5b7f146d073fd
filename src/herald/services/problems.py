"""Collecting every problem of a request, so a client can fix them all in one go."""

from __future__ import annotations

from dataclasses import dataclass, field

from herald.errors import ValidationFailed


@dataclass
class Problems:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: str, message: str, code: str) -> None:
        item = {"path": path, "message": message, "code": code}
        if item not in self.items:  # one literal text shared by many destinations
            self.items.append(item)

    def summary(self, *, with_path: bool = True) -> str:
        """The first problem's sentence, and how many more there are."""
        first = self.items[0]
        more = f" (and {len(self.items) - 1} more problems)" if len(self.items) > 1 else ""
        said = f"{first['path']}: {first['message']}" if with_path else first["message"]
        return said + more

    def raise_if_any(self) -> None:
        """A 422 naming the first problem, with every problem in ``details.errors``."""
        if not self.items:
            return
        raise ValidationFailed(
            self.summary(),
            code=self.items[0]["code"] if len(self.items) == 1 else "validation_failed",
            details={"errors": self.items},
        )
