"""Which desired revision a host worker has reached (app.services.intent, host side).

A bundle at revision R carries base R-1 and moves the host to R only on top of R-1. One
that arrives early (its predecessor is late or lost) is run at once, its state being whole,
and kept: once the gap is filled it runs again, so that an older state applied after it
cannot stay. A full bundle (the whole desired state) resets the count, and bundles kept
that came after it run again on top of it.

Bundles drained from the queue together (workers.batching) are taken as one batch: the same
decisions as one by one, but their steps run once, together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("virtnet.worker")

#: bundles run ahead of a gap that are kept to be run again; beyond this the resync repairs
MAX_AHEAD = 128

#: runs a bundle's steps; False if one of them failed unexpectedly
Runner = Callable[[int, Sequence[Sequence[Any]]], bool]
#: runs the steps of several bundles, [(revision, steps)] in order; False as Runner
PlanRunner = Callable[[list[tuple[int, Sequence[Sequence[Any]]]]], bool]


class BundleLike(Protocol):
    @property
    def base(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def full(self) -> bool: ...
    @property
    def steps(self) -> Sequence[Sequence[Any]]: ...


@dataclass(frozen=True)
class Pending:
    """A bundle's fields, as HostAgent.apply gets them one by one."""

    base: int
    revision: int
    full: bool
    steps: Sequence[Sequence[Any]]


class Revisions:
    def __init__(self) -> None:
        #: the last revision reached; a new worker starts from 0 and is brought up to date by
        #: the full state its registration gets
        self.applied = 0
        #: bundles run ahead of a gap, by base: base -> (revision, steps)
        self._ahead: dict[int, tuple[int, Sequence[Sequence[Any]]]] = {}

    def take(
        self, run: Runner, *, base: int, revision: int, full: bool, steps: Sequence[Sequence[Any]]
    ) -> None:
        if revision <= self.applied and not full:
            # already in: running an older state again could undo a newer one
            log.info("revision %d skipped: revision %d is applied", revision, self.applied)
            return
        if full:
            ok = run(revision, steps)
            # the whole state as of ``base`` plus its own revision: at ``revision`` only if
            # no other transaction took one in between
            reached = revision if base == revision - 1 else base
            self.applied = reached if ok else min(self.applied, base)
            self._catch_up(run)
        elif base == self.applied:
            if run(revision, steps):
                self.applied = revision
                self._catch_up(run)
        else:
            log.info("revision %d is not on top of %d: run now, and again later", revision, base)
            run(revision, steps)
            if len(self._ahead) < MAX_AHEAD:
                self._ahead[base] = (revision, steps)

    def take_many(self, run: PlanRunner, bundles: Sequence[BundleLike]) -> None:
        """Take ``bundles`` (in queue order) as one batch: decide as ``take`` one by one
        would, each step to run becoming part of one plan, then run the plan. If a step of it
        failed, which bundle's is not known: the host then claims no revision past where the
        batch started (nor past the base of a full bundle in it), and the resync repairs."""
        plan: list[tuple[int, Sequence[Sequence[Any]]]] = []

        def planned(revision: int, steps: Sequence[Sequence[Any]]) -> bool:
            plan.append((revision, steps))
            return True

        floor = self.applied
        for bundle in bundles:
            if bundle.full:
                floor = min(floor, bundle.base)
            self.take(
                planned,
                base=bundle.base,
                revision=bundle.revision,
                full=bundle.full,
                steps=bundle.steps,
            )
        if plan and not run(plan):
            self.applied = min(self.applied, floor)

    def _catch_up(self, run: Runner) -> None:
        for base in [b for b, (r, _) in self._ahead.items() if r <= self.applied]:
            del self._ahead[base]
        while (ahead := self._ahead.pop(self.applied, None)) is not None:
            revision, steps = ahead
            if not run(revision, steps):
                return
            self.applied = revision
