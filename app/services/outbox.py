"""Messages to workers, collected inside a transaction and sent only after it commits.

Messages to a host are sent as one bundle per host per transaction, stamped with the
host's desired revision (app.services.intent). The bundle is only a nudge: if it is lost,
the control worker's periodic pass sends the host its whole desired state again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.messages import Message as Payload
from app.messages.names import APPLY_BUNDLE, queue_host

log = logging.getLogger("virtnet.outbox")


class TaskSender(Protocol):
    def __call__(self, name: str, kwargs: dict[str, Any], queue: str, /) -> None: ...


Message = tuple[str, dict[str, Any], str]


@dataclass
class Outbox:
    """Tasks a service decided to send; flushed by the caller once the commit succeeded."""

    sender: TaskSender | None
    pending: list[Message] = field(default_factory=list)
    #: hosts sent their whole desired state in this transaction: host -> the desired
    #: revision the snapshot was read at (every revision up to it is in the snapshot)
    full: dict[str, int] = field(default_factory=dict)
    #: how many messages the last flush could not send (the broker did not answer)
    lost: int = 0

    def add(self, name: str, kwargs: Payload | dict[str, Any], queue: str) -> None:
        """Queue one task: its payload as a message type (app.messages), sent as JSON."""
        payload = kwargs.wire() if isinstance(kwargs, Payload) else kwargs
        self.pending.append((name, payload, queue))

    def discard(self) -> None:
        """Forget what this transaction queued (it rolled back, or is about to be retried)."""
        self.pending = []
        self.full = {}

    def hosts(self) -> list[str]:
        """Hosts with messages pending, in the order their revisions are taken (by name,
        so that two transactions lock the hosts' rows in the same order)."""
        return sorted({h for _, _, q in self.pending if (h := queue_host(q)) is not None})

    def seal(self, revisions: dict[str, int]) -> None:
        """Turn each host's messages into one bundle at ``revisions[host]``, in the place of
        the host's first message; the steps keep the order they were added in."""
        bundles: dict[str, dict[str, Any]] = {}
        sealed: list[Message] = []
        for name, kwargs, queue in self.pending:
            host = queue_host(queue)
            if host is None or host not in revisions:
                sealed.append((name, kwargs, queue))
                continue
            bundle = bundles.get(host)
            if bundle is None:
                revision = revisions[host]
                full = host in self.full
                bundle = bundles[host] = {
                    "base": self.full[host] if full else revision - 1,
                    "revision": revision,
                    "full": full,
                    "steps": [],
                }
                sealed.append((APPLY_BUNDLE, bundle, queue))
            bundle["steps"].append([name, kwargs])
        self.pending, self.full = sealed, {}

    def flush(self) -> None:
        """Send what is pending; never raises (the commit already happened, and what it
        decided reaches the hosts anyway, from the periodic pass)."""
        pending, self.pending = self.pending, []
        self.full, self.lost = {}, 0
        if self.sender is None:
            return
        for i, (name, kwargs, queue) in enumerate(pending):
            try:
                self.sender(name, kwargs, queue)
            except Exception as exc:  # broker away: every later send would fail the same way
                self.lost = len(pending) - i
                log.warning(
                    "could not send %d task(s) after commit (%s); the periodic resync "
                    "delivers their intent",
                    self.lost,
                    exc,
                )
                return
