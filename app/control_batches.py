"""The control worker records the port and revision reports waiting in its queue together,
in one transaction (issue 12).

When the control worker is given a port or revision report, it also takes what waits behind
it (app.celery_app.QueueDrain): the heartbeats first, recorded at once, so that no host looks
down while reports pile up; then the control queue, in order. Consecutive port and revision
reports are recorded together: each host's port results in the order they came, with one
``port_lifecycle.record`` per host, then each host's last revision (the reports of one worker
arrive in the order sent, so the last is where the host is; a ports report carries the
revision its batch reached), all in one transaction, run again as a whole if it loses a race
(retry.run). The plug and unplug times they carry are counted after its commit, in a
transaction of their own, so that no ``?wait`` waits for the histograms. Any other report is
recorded on its own, in its place. If the transaction fails for good, each report is
recorded on its own, so that a bad one takes no other down with it. What was taken is
acknowledged only after that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.messages import AppliedReport, PortsReport
from app.messages.names import HEARTBEAT, REPORT_APPLIED, REPORT_PORTS
from app.services import intent, port_lifecycle
from app.services.context import Ctx

log = logging.getLogger("virtnet.control")

#: the reports recorded together
GROUPED = frozenset({REPORT_PORTS, REPORT_APPLIED})
#: records one control message on its own: task name, keyword arguments
Alone = Callable[[str, dict[str, Any]], None]
#: a report as read: None if it is not genuine or malformed (already logged)
Reader = Callable[[str, dict[str, Any]], PortsReport | AppliedReport | None]
#: after a group's commit: each host's port results (for the latency histograms)
Recorded = Callable[[dict[str, list[dict[str, Any]]]], None]


class Taken(Protocol):
    name: str
    kwargs: dict[str, Any]


class OneTransaction(Ctx):
    """A context whose service calls do not commit: what they decide is flushed, and the
    batch commits it all at once (``commit_all``)."""

    def commit(self, *, conflict: str) -> None:
        self.db.flush()

    def commit_all(self, *, conflict: str) -> None:
        Ctx.commit(self, conflict=conflict)


@dataclass
class Group:
    """Consecutive port and revision reports, as recorded together."""

    #: host -> its port results, in the order they came
    ports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: host -> the last revision it reported
    applied: dict[str, int] = field(default_factory=dict)
    #: the messages, to record one by one if the group cannot be
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, report: PortsReport | AppliedReport) -> None:
        if isinstance(report, PortsReport):
            self.ports.setdefault(report.host, []).extend(r.wire() for r in report.results)
            if report.applied is not None:
                self.applied[report.host] = report.applied
        else:
            self.applied[report.host] = report.revision

    def record(self, ctx: Ctx) -> None:
        """In one transaction (the caller's ``ctx``, whose commits are deferred)."""
        one = OneTransaction(db=ctx.db, outbox=ctx.outbox, settings=ctx.settings)
        for host in sorted(self.ports):
            port_lifecycle.record(one, host=host, results=self.ports[host])
        for host in sorted(self.applied):
            intent.record_applied(one, host=host, revision=self.applied[host])
        one.commit_all(conflict="reports raced a change of their ports; recorded again")


def handle(
    first: tuple[str, dict[str, Any]],
    taken: Sequence[Taken],
    *,
    read: Reader,
    alone: Alone,
    record: Callable[[Callable[[Ctx], None]], None],
    recorded: Recorded = lambda _results: None,
) -> None:
    """Record ``first`` (a port or revision report) and what was taken along with it.

    ``record(call)`` runs ``call`` on a fresh context, again if it lost a race (retry.run)."""
    rest: list[tuple[str, dict[str, Any]]] = []
    for item in taken:
        if item.name == HEARTBEAT:
            _alone(alone, item.name, item.kwargs)
        else:
            rest.append((item.name, item.kwargs))
    group = Group()
    for name, message in [first, *rest]:
        if name not in GROUPED:
            _flush(group, alone, record, recorded)
            group = Group()
            _alone(alone, name, message)
            continue
        group.messages.append((name, message))
        report = read(name, message)
        if report is not None:
            group.add(report)
    _flush(group, alone, record, recorded)


def _flush(
    group: Group, alone: Alone, record: Callable[[Callable[[Ctx], None]], None], recorded: Recorded
) -> None:
    if not group.ports and not group.applied:
        return
    if len(group.messages) == 1 and not (group.ports and group.applied):
        _alone(alone, *group.messages[0])
        return
    try:
        record(group.record)
    except Exception:
        log.exception(
            "recording %d reports together failed: recording each on its own",
            len(group.messages),
        )
    else:
        recorded(group.ports)
        return
    for name, message in group.messages:
        _alone(alone, name, message)


def _alone(alone: Alone, name: str, message: dict[str, Any]) -> None:
    try:
        alone(name, message)
    except Exception:  # as Celery would for the message alone: log it, go on with the others
        log.exception("recording %s failed", name)
