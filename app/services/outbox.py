"""Messages to workers, collected inside a transaction and sent only after it commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class TaskSender(Protocol):
    def __call__(self, name: str, kwargs: dict[str, Any], queue: str, /) -> None: ...


@dataclass
class Outbox:
    """Tasks a service decided to send; flushed by the caller once the commit succeeded."""

    sender: TaskSender | None
    pending: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def add(self, name: str, kwargs: dict[str, Any], queue: str) -> None:
        self.pending.append((name, kwargs, queue))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if self.sender is None:
            return
        for name, kwargs, queue in pending:
            self.sender(name, kwargs, queue)
