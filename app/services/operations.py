"""Operations: what an action that touches a host returns, and what ?wait waits for."""

from __future__ import annotations

import time
import uuid
from contextlib import nullcontext
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db import READ_ONLY, get_engine, get_sessionmaker
from app.models import Operation, Port, utcnow
from app.services import locks, op_notify, retry
from app.services.context import Ctx
from app.services.errors import NotFound

#: "refused": the host left everything as it was (a tap in use, and no force)
FINISHED = frozenset({"succeeded", "failed", "refused"})
#: key in ``Port.spec``: the operation whose count this port's report has already lowered
REPORTED = "reported_op"
#: seconds between re-reads when the notification does not come (or on SQLite)
FALLBACK_POLL = 0.2


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


def counted(port: Port, op: Operation) -> bool:
    """Lower ``op``'s count for ``port``'s report, once: False if it was already counted (a
    redelivered report)."""
    if port.spec.get(REPORTED) == op.id:
        return False
    port.spec = {**port.spec, REPORTED: op.id}
    op.pending = max(0, op.pending - 1)
    return True


def take_over(ctx: Ctx, port: Port, op: Operation, *, reason: str | None = None) -> None:
    """``op`` now waits for ``port``'s next report, instead of the operation that did.

    That earlier operation will never get the report it waited for (the port's generation
    moved on): it stops waiting for this port. If the port had not reported yet, the earlier
    operation did not get its effect and it ends ``failed``, with ``reason`` (by default
    "superseded by operation <id>"), once nothing else of it is left to report; a port that
    had already reported leaves it as it was.
    """
    old_id, port.operation_id = port.operation_id, op.id
    if old_id and old_id != op.id:
        _stop_waiting(ctx, port, old_id, reason or f"superseded by operation {op.id}")


def forget(ctx: Ctx, port_list: list[Port]) -> None:
    """These ports' rows go now (their network is deleted): no operation waits for them any
    more; one that has nothing else left to wait for ends (succeeded, unless it failed)."""
    for port in port_list:
        old_id, port.operation_id = port.operation_id, None
        if old_id:
            _stop_waiting(ctx, port, old_id, None)


def _stop_waiting(ctx: Ctx, port: Port, old_id: str, note: str | None) -> None:
    old = locks.operation(ctx, old_id)
    if old is None or old.state != "running" or port.spec.get(REPORTED) == old_id:
        return
    old.pending = max(0, old.pending - 1)
    if note and note not in (old.error or ""):
        old.error = f"{old.error}; {note}" if old.error else note
    if old.pending == 0:
        from app.services import port_lifecycle

        port_lifecycle.finish(ctx, old)


def refuse(op: Operation, error: str) -> None:
    finish(op, error)
    op.state = "refused"


def get(ctx: Ctx, op_id: str) -> Operation:
    op = ctx.db.get(Operation, op_id)
    if op is None:
        raise NotFound(f"operation {op_id!r} does not exist (or has expired)")
    return op


def wait(ctx: Ctx, op_id: str, seconds: float) -> Operation:
    """Wait until the operation finished or the time is up; returns it either way."""
    return wait_port(ctx, op_id, seconds)[0]


def wait_port(
    ctx: Ctx, op_id: str, seconds: float, port_id: str | None = None
) -> tuple[Operation, Port | None]:
    """``wait``, and the port ``port_id`` (None if gone) read with the operation's last
    read, in the same statement.

    On PostgreSQL the transaction that ends an operation notifies it (``op_notify``) and the
    row is re-read when that arrives (only then, when the listener heard everything since
    ``ctx`` was made); a slow poll stays as the fallback, and is all there is on SQLite. The
    reads run in a session of their own that never takes SQLite's write lock (on PostgreSQL,
    single statements outside a transaction), and end before each sleep: a waiting client
    must not hold up the reports it waits for.
    """
    ctx.db.commit()  # ends the caller's transaction and, unlike a rollback, keeps its objects
    deadline = time.monotonic() + seconds
    url = ctx.settings.effective_database_url
    listener = op_notify.listener(url)
    with (
        _readers(url)() as db,
        listener.watch(op_id, ready_within=min(seconds, 1.0), since=ctx.started)
        if listener
        else nullcontext(None) as woken,
    ):
        delay = 0.001
        while True:
            if woken is not None:
                woken.wait(max(0.0, min(FALLBACK_POLL, deadline - time.monotonic())))
                woken.clear()
            op, port = _read(db, op_id, port_id)
            if op is None:
                raise NotFound(f"operation {op_id!r} does not exist (or has expired)")
            left = deadline - time.monotonic()
            if op.state in FINISHED or left <= 0:
                return op, port
            db.rollback()
            if woken is None:
                time.sleep(min(delay, left))
                delay = min(delay * 1.25, 0.02)


def _read(db: Session, op_id: str, port_id: str | None) -> tuple[Operation | None, Port | None]:
    try:
        return _select(db, op_id, port_id)
    except DBAPIError as exc:
        if not retry.is_dropped_connection(exc):
            raise
        db.rollback()  # the database restarted since the connection's last use: a fresh one
        return _select(db, op_id, port_id)


def _select(db: Session, op_id: str, port_id: str | None) -> tuple[Operation | None, Port | None]:
    if port_id is None:
        return db.get(Operation, op_id, populate_existing=True), None
    query = (
        select(Operation, Port)
        .outerjoin(Port, Port.id == port_id)
        .where(Operation.id == op_id)
        .execution_options(populate_existing=True)
    )
    row = db.execute(query).first()
    return (row[0], row[1]) if row is not None else (None, None)


@lru_cache(maxsize=8)
def _readers(url: str) -> sessionmaker[Session]:
    """Sessions for a waiter's reads: on PostgreSQL in autocommit, one statement each with
    no BEGIN and ROLLBACK around it (a read of one row needs no transaction)."""
    if not url.startswith("postgresql"):
        return get_sessionmaker(url, read_only=True)
    bind = get_engine(url).execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})
    return sessionmaker(bind, expire_on_commit=False, info={READ_ONLY: True})


def overdue(ctx: Ctx) -> list[str]:
    """Running operations older than the deadline (oldest first), to end with ``expire``."""
    limit = utcnow() - timedelta(seconds=ctx.settings.operation_deadline_seconds)
    query = select(Operation.id).where(Operation.state == "running", Operation.created_at < limit)
    return list(ctx.db.scalars(query.order_by(Operation.created_at)))


def expire(ctx: Ctx, op_id: str) -> Operation | None:
    """End an overdue operation ``failed``, naming the hosts that did not answer in time.

    Its ports stay as wanted (the database holds the intent): a host that comes back is sent
    its whole desired state and converges; its late reports still move the ports along. The
    operation ends as if its last port had reported, so its domain settles as it would on a
    failure (a start that failed is rolled back, a stop leaves the domain shut off)."""
    from app.services import migration, port_lifecycle

    seconds = f"{ctx.settings.operation_deadline_seconds:g}"
    probe = ctx.db.get(Operation, op_id)
    if probe is None or probe.state != "running":
        return None
    if probe.kind == migration.KIND:
        return migration.expire(ctx, probe, seconds)
    waiting = select(Port.id, Port.domain_id).where(Port.operation_id == op_id)
    rows = ctx.db.execute(waiting).all()
    locks.domains(ctx, [r.domain_id for r in rows if r.domain_id is not None])
    port_list = list(locks.ports(ctx, [r.id for r in rows]).values())
    op = locks.operation(ctx, op_id)
    if op is None or op.state != "running":
        return None
    silent = sorted(
        {p.host for p in port_list if p.operation_id == op.id and p.spec.get(REPORTED) != op.id}
    )
    if silent:
        note = f"host {', '.join(silent)} did not answer within {seconds} s"
    else:
        note = f"no report came within {seconds} s"
    op.error = f"{op.error}; {note}" if op.error else note
    port_lifecycle.finish(ctx, op)
    return op
