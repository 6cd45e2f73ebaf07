"""Operations: what an action that touches a host returns, and what ?wait waits for."""

from __future__ import annotations

import time
import uuid

from app.db import get_sessionmaker
from app.models import Operation, utcnow
from app.services.context import Ctx
from app.services.errors import NotFound

#: "refused": the host left everything as it was (a tap in use, and no force)
FINISHED = frozenset({"succeeded", "failed", "refused"})


def begin(ctx: Ctx, *, kind: str, target: str, pending: int) -> Operation:
    op = Operation(
        id=str(uuid.uuid4()),
        kind=kind,
        target=target,
        pending=pending,
        state="running" if pending else "succeeded",
    )
    if not pending:
        op.finished_at = utcnow()
    ctx.db.add(op)
    return op


def finish(op: Operation, error: str | None = None) -> None:
    op.state = "failed" if error else "succeeded"
    op.error = error
    op.pending = 0
    op.finished_at = utcnow()


def refuse(op: Operation, error: str) -> None:
    finish(op, error)
    op.state = "refused"


def get(ctx: Ctx, op_id: str) -> Operation:
    op = ctx.db.get(Operation, op_id)
    if op is None:
        raise NotFound(f"operation {op_id!r} does not exist (or has expired)")
    return op


def wait(ctx: Ctx, op_id: str, seconds: float) -> Operation:
    """Poll until the operation finished or the time is up; returns it either way.

    The polls read in a session of their own that never takes SQLite's write lock, and end
    each read before sleeping: a waiting client must not hold up the reports it waits for.
    """
    ctx.db.commit()  # ends the caller's transaction and, unlike a rollback, keeps its objects
    deadline = time.monotonic() + seconds
    delay = 0.001
    with get_sessionmaker(ctx.settings.effective_database_url, read_only=True)() as db:
        while True:
            op = db.get(Operation, op_id, populate_existing=True)
            if op is None:
                raise NotFound(f"operation {op_id!r} does not exist (or has expired)")
            if op.state in FINISHED or time.monotonic() >= deadline:
                return op
            db.rollback()
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.25, 0.02)
