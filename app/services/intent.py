"""Durable intent: each host's desired revision is bumped in the transaction that decides
something for the host; the host reports the revision it reached; hosts that lag get their
whole desired state again (docs/architecture.md, "Convergence").

A bundle at revision R carries base R-1: the host applies it on top of R-1. A full bundle
(the whole desired state) carries as base the desired revision its snapshot was read at; it
brings the host to R only if no other transaction took a revision in between.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Table, bindparam, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import HostIntent, Port, Realisation, UtcDateTime, utcnow
from app.services.outbox import Outbox

if TYPE_CHECKING:
    from app.services.context import Ctx

#: realisation states a host's report ends in (realisation.FINAL_STATES)
_FINAL = ("active", "degraded", "failed")
#: at most this many resync periods between two resends to a host that does not move
_MAX_BACKOFF = 4
#: a report still missing after this many resync periods is lost, even if the host is busy
BUSY_PERIODS = 3


def _upsert(db: Session, host: str, *, new: dict[str, object], update: dict[str, object]) -> int:
    """Insert the host's row (``new``) or update it (``update``); return its desired
    revision. The row stays locked until the transaction ends."""
    table: Table = HostIntent.__table__  # type: ignore[assignment]
    now = utcnow()
    row = {"desired": 0, "applied": 0, "changed_at": now, "applied_at": now, "resends": 0}
    stmt = _insert(db)(table).values(host=host, **{**row, **new})
    stmt = stmt.on_conflict_do_update(index_elements=[table.c.host], set_=update)
    return int(db.execute(stmt.returning(table.c.desired)).scalar_one())


def _insert(db: Session) -> Any:
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def bump(db: Session, host: str) -> int:
    """Take the host's next desired revision (every write that sends a host something)."""
    stmt = _bump_statement(db.get_bind().dialect.name)
    return int(db.execute(stmt, {"of_host": host, "now": utcnow()}).scalar_one())


@cache
def _bump_statement(dialect: str) -> Any:
    """Built once per dialect: making this upsert cost as much as running it (~0.3 ms)."""
    table: Table = HostIntent.__table__  # type: ignore[assignment]
    c = table.c
    now = bindparam("now", type_=UtcDateTime())
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(
        host=bindparam("of_host"), desired=1, applied=0, changed_at=now, applied_at=now, resends=0
    )
    # the lag starts when the host falls behind, not at each later change
    since = case((c.desired == c.applied, now), else_=c.changed_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.host], set_={"desired": c.desired + 1, "changed_at": since}
    )
    return stmt.returning(c.desired)


def stamp(db: Session, outbox: Outbox) -> None:
    """Bump the desired revision of every host the transaction sends something to, and
    bundle its messages at that revision. Called just before the commit."""
    hosts = outbox.hosts()
    if not hosts:
        return
    db.flush()  # the transaction's own changes first: a conflict there is the caller's 409
    outbox.seal({host: bump(db, host) for host in hosts})


def begin_full(ctx: Ctx, host: str, *, resend: bool = False) -> None:
    """The transaction sends ``host`` its whole desired state: note the revision the snapshot
    starts from. Call before reading what goes into it.

    ``resend`` (the periodic pass): lock the host's row first, so no other transaction takes
    a revision until this one commits, and note the resend."""
    if resend:
        c = HostIntent.__table__.c
        now = utcnow()
        desired = _upsert(
            ctx.db,
            host,
            new={"resent_at": now, "resends": 1},
            update={"resent_at": literal(now, UtcDateTime()), "resends": c.resends + 1},
        )
    else:
        row = ctx.db.scalar(select(HostIntent.desired).where(HostIntent.host == host))
        desired = row or 0
    ctx.outbox.full[host] = desired


def not_resent(ctx: Ctx, host: str) -> None:
    """The resend never left (the broker did not answer): the next pass tries again without
    backing off further."""
    row = ctx.db.get(HostIntent, host, with_for_update=True, populate_existing=True)
    if row is not None:
        row.resent_at, row.resends = None, max(0, row.resends - 1)
    ctx.db.commit()


def record_applied(ctx: Ctx, *, host: str, revision: int) -> None:
    """A host says which revision it reached. Reports of one worker arrive in the order sent,
    so the last one is where the host is (a restarted worker starts again from 0).

    One UPDATE when the row exists and the revision moves it (each report after a bundle);
    otherwise the row is read, locked, and made or left as it is."""
    moved = _applied_statement()
    params = {"of_host": host, "revision": revision, "at": utcnow()}
    if ctx.db.execute(moved, params).rowcount:  # type: ignore[attr-defined]
        ctx.commit(conflict=f"host {host!r} reported twice at the same time")
        return
    row = ctx.db.get(HostIntent, host, with_for_update=True, populate_existing=True)
    if row is None:
        row = HostIntent(host=host, desired=0, applied=0, resends=0)
        ctx.db.add(row)
    now = utcnow()
    if revision > row.desired:
        # the host is ahead of what this database ever asked (a database restored from a
        # backup): make it lag, so that it gets the whole state at a revision it will take
        row.desired, row.changed_at = revision + 1, now
    if row.applied != revision:
        row.applied, row.applied_at, row.resends = revision, now, 0
    ctx.commit(conflict=f"host {host!r} reported twice at the same time")


@cache
def _applied_statement() -> Any:
    """``record_applied``'s UPDATE, built once (each report runs it)."""
    c = HostIntent.__table__.c
    revision = bindparam("revision", type_=Integer())
    at = bindparam("at", type_=UtcDateTime())
    ahead = c.desired < revision  # (every SET below reads the row as it was)
    moved = update(HostIntent).where(c.host == bindparam("of_host"))
    moved = moved.where(or_(c.applied != revision, ahead))
    moved = moved.values(
        desired=case((ahead, revision + 1), else_=c.desired),
        changed_at=case((ahead, at), else_=c.changed_at),
        applied=revision,
        applied_at=case((c.applied != revision, at), else_=c.applied_at),
        resends=case((c.applied != revision, 0), else_=c.resends),
    )
    # "fetch": RETURNING the key updates a row this session holds, in the same statement
    return moved.execution_options(synchronize_session="fetch")


def lagging(ctx: Ctx, hosts: list[str]) -> list[str]:
    """Of the hosts given (those up), the ones to send their whole desired state again:
    a nudge was lost (desired ahead of applied for a resync period), or a report was lost
    (the host applied everything, yet a port or realisation it was sent still waits; or one
    has waited for BUSY_PERIODS periods while the host kept busy with later changes)."""
    period = timedelta(seconds=ctx.settings.resync_seconds)
    now = utcnow()
    intents = {i.host: i for i in ctx.db.scalars(select(HostIntent))}
    waiting = _waiting_since(ctx, now - period)
    out = []
    for host in hosts:
        row = intents.get(host)
        since = waiting.get(host)
        if row is not None and row.resent_at is not None:
            backoff = period * min(2**row.resends, _MAX_BACKOFF)
            if now - row.resent_at < backoff:
                continue
        if row is not None and row.desired > row.applied:
            late = now - max(row.changed_at, row.applied_at) >= period
            late = late or (since is not None and now - since >= period * BUSY_PERIODS)
        else:
            late = since is not None
        if late:
            out.append(host)
    return out


def _waiting_since(ctx: Ctx, before: datetime) -> dict[str, datetime]:
    """host -> since when its oldest port or realisation has been waiting for a report (of
    those waiting since ``before`` or longer)."""
    ports = (
        select(Port.host, func.min(Port.updated_at))
        .where(
            Port.state.in_(("plugging", "unplugging")),
            Port.migration.is_(None),
            Port.updated_at < before,
        )
        .group_by(Port.host)
    )
    realisations = (
        select(Realisation.host, func.min(Realisation.updated_at))
        .where(Realisation.state.not_in(_FINAL), Realisation.updated_at < before)
        .group_by(Realisation.host)
    )
    out: dict[str, datetime] = {}
    for query in (ports, realisations):
        for host, since in ctx.db.execute(query):
            out[host] = min(since, out.get(host, since))
    return out


def revisions(ctx: Ctx, host: str | None = None) -> dict[str, tuple[int, int]]:
    """host -> (desired, applied), of one host or all."""
    query = select(HostIntent.host, HostIntent.desired, HostIntent.applied)
    if host is not None:
        query = query.where(HostIntent.host == host)
    return {h: (d, a) for h, d, a in ctx.db.execute(query)}


def status(ctx: Ctx, host: str) -> tuple[int, int, datetime | None]:
    """(desired, applied, applied_at) of one host, for logs and tests."""
    row = ctx.db.get(HostIntent, host)
    return (row.desired, row.applied, row.applied_at) if row else (0, 0, None)
