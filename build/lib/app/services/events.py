"""Lifecycle events: written with the change they report, read back in id order."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from app.models import Event, utcnow
from app.services.context import Ctx

RETENTION = timedelta(minutes=10)
#: how long a reader waits for a missing id (a transaction still committing) before skipping it
GAP_GRACE_SECONDS = 2.0


def publish(ctx: Ctx, kind: str, subject: str, **data: Any) -> None:
    """Record an event in the open transaction: it exists exactly when the change does."""
    ctx.db.add(Event(kind=kind, subject=subject, data=data))


def as_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "subject": event.subject,
        "time": event.created_at.isoformat(),
        "data": event.data,
    }


def latest_id(ctx: Ctx) -> int:
    return ctx.db.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0


def prune(ctx: Ctx) -> None:
    ctx.db.execute(delete(Event).where(Event.created_at < utcnow() - RETENTION))


class EventReader:
    """Reads events after a given id, in order, without skipping one that commits late.

    Ids come from a sequence, so a transaction that took id 7 may commit after the one that
    took id 8; a reader that jumped to 8 would miss 7 forever. The reader stops at a hole and
    waits up to GAP_GRACE_SECONDS for it to fill (a rolled-back transaction never fills it).
    """

    def __init__(self, after: int) -> None:
        self.after = after
        self._hole_since: float | None = None

    def poll(self, ctx: Ctx, limit: int = 500) -> list[dict[str, Any]]:
        ctx.db.rollback()
        rows = ctx.db.scalars(
            select(Event).where(Event.id > self.after).order_by(Event.id).limit(limit)
        ).all()
        out = []
        for event in rows:
            if event.id != self.after + 1 and not self._hole_expired():
                break
            self._hole_since = None
            out.append(as_dict(event))
            self.after = event.id
        return out

    def _hole_expired(self) -> bool:
        now = time.monotonic()
        if self._hole_since is None:
            self._hole_since = now
        return now - self._hole_since >= GAP_GRACE_SECONDS
