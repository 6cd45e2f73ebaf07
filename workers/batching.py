"""A host worker drains its queue: the bundles waiting behind the one it was given run with
it as one batch (issue 12).

Which bundles run, in which order, is what the revision bookkeeping decides taking them one
by one (workers.revisions): skipped if already applied, run at once and again once a gap is
filled. Their steps then run together: consecutive ApplyPorts steps become one, in which the
last desired state of a port wins (a later revision of a port is a later decision), so the
kernel sees one ``unplug_many`` and one ``plug_many``; any other step stays where it was, the
ports before it applied first. One ports report and one applied report go back for the lot.

The messages taken along are acknowledged only after their kernel work and reports are done
(app.celery_app.QueueDrain): a worker killed halfway leaves them unacknowledged, like the
message Celery gave it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from celery import Celery

from app.messages import ApplyPorts, Bundle, HostPort, Message, MessageError, read_step
from app.messages.names import (
    APPLY_BUNDLE,
    APPLY_PORTS,
    REALISE_NETWORK,
    RECONCILE_HOST,
    REMOVE_NETWORK,
    SYNC_OVERLAY,
)

if TYPE_CHECKING:
    from workers.tasks import HostAgent

log = logging.getLogger("virtnet.worker")

#: what a bundle's steps are, one [task name, payload] each
Steps = Sequence[Sequence[Any]]
#: (revision, steps) of each bundle to run, in the order to run them
Plan = list[tuple[int, Steps]]
#: the tasks sent one step each before bundles existed
SINGLE_STEPS = (REALISE_NETWORK, REMOVE_NETWORK, RECONCILE_HOST, SYNC_OVERLAY, APPLY_PORTS)


class Taken(Protocol):
    """A message taken from the queue (app.celery_app.Drained)."""

    name: str
    kwargs: dict[str, Any]


class Drain(Protocol):
    """Takes what waits in the worker's queue now; acknowledges it once done with it."""

    def take(self) -> Sequence[Taken]: ...

    def ack(self, drained: Any) -> None: ...


@dataclass
class Unreadable:
    """A step that is no step we know (MessageError): it fails, the others run."""

    revision: int
    name: str
    error: MessageError


Item = tuple[int, Message] | Unreadable


def merge(plan: Plan) -> list[Item]:
    """The steps of ``plan`` as they run: consecutive ApplyPorts merged into one, the last
    desired state of each port kept (at the place of its last mention, so that a port that
    takes a tap name another port gave up comes after it). Each step is labelled with the
    revision it came from (the last one, for a merged step)."""
    out: list[Item] = []
    for revision, steps in plan:
        for name, payload in steps:
            try:
                step = read_step(name, payload)
            except MessageError as exc:
                out.append(Unreadable(revision, name, exc))
                continue
            last = out[-1] if out else None
            if (
                isinstance(step, ApplyPorts)
                and isinstance(last, tuple)
                and isinstance(last[1], ApplyPorts)
            ):
                out[-1] = (revision, ApplyPorts(ports=latest(last[1].ports, step.ports)))
            else:
                out.append((revision, step))
    return out


def latest(before: Sequence[HostPort], after: Sequence[HostPort]) -> list[HostPort]:
    """``before`` then ``after``, each port once: its last state, in its last place."""
    by_id: dict[str, HostPort] = {}
    for port in (*before, *after):
        by_id.pop(port.port_id, None)
        by_id[port.port_id] = port
    return list(by_id.values())


def handle(agent: HostAgent, first: Bundle, taken: Sequence[Taken]) -> None:
    """Run ``first`` and what was taken along, in queue order: consecutive bundles as one
    batch, a single-step message (from an older control plane) on its own between them."""
    bundles = [first]
    for item in taken:
        if item.name == APPLY_BUNDLE:
            try:
                bundles.append(Bundle.read(item.kwargs, APPLY_BUNDLE))
            except MessageError as exc:
                log.error("refused a bundle: %s", exc)
            continue
        _apply(agent, bundles)
        bundles = []
        if item.name not in SINGLE_STEPS:
            log.error("refused a message for an unknown task %r", item.name)
            continue
        try:
            agent.step(item.name, item.kwargs)
        except Exception:  # as Celery would for the message alone: log it, go on
            log.exception("task %s failed", item.name)
    _apply(agent, bundles)


def _apply(agent: HostAgent, bundles: list[Bundle]) -> None:
    if not bundles:
        return
    if len(bundles) > 1:
        log.info(
            "%d bundles (revisions %d..%d) as one batch",
            len(bundles),
            bundles[0].revision,
            bundles[-1].revision,
        )
    try:
        agent.apply_many(bundles)
    except Exception:  # the reports could not be sent: the resync repairs
        log.exception("applying %d bundle(s) failed", len(bundles))


def register_host_tasks(celery: Celery, agent: HostAgent, drain: Drain | None = None) -> None:
    @celery.task(name=APPLY_BUNDLE, ignore_result=True)
    def apply(**message: Any) -> None:
        first = Bundle.read(message, APPLY_BUNDLE)
        taken = drain.take() if drain is not None else []
        try:
            handle(agent, first, taken)
        finally:  # after the kernel work and the reports; never if the process died
            if drain is not None:
                drain.ack(taken)

    # one step each, as sent before bundles: a queue from an older control plane still drains
    def single(name: str) -> None:
        def step(**payload: Any) -> None:
            agent.step(name, payload)

        celery.task(name=name, ignore_result=True)(step)

    for name in SINGLE_STEPS:
        single(name)
