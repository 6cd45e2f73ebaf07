"""Transactions that lost a race run again; an unreachable database is an outage, not a bug.

PostgreSQL may abort a transaction that did nothing wrong: a deadlock victim (40P01), a
serialization failure (40001), an insert that lost the race for a unique value it chose
itself (23505, e.g. the lowest free ``virbrN``), or (StaleDataError) a row it read was
changed or deleted before its write. Run again from the start, the transaction
sees the winner's commit and either picks another value or refuses with the service's own
409. ``run`` does that for a service call on a context; the API does it for a whole request
(``app.api.transactions``). Both stop after ``ATTEMPTS`` and never re-run a call that
committed: a retry must not apply a change twice.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

if TYPE_CHECKING:
    from app.services.context import Ctx

T = TypeVar("T")
log = logging.getLogger("virtnet.retry")

ATTEMPTS = 5
#: the first pause; each later one doubles, each jittered by ±50%
FIRST_PAUSE = 0.01
SERIALIZATION_FAILURE, DEADLOCK, UNIQUE_VIOLATION = "40001", "40P01", "23505"
RACES = frozenset({SERIALIZATION_FAILURE, DEADLOCK, UNIQUE_VIOLATION})
#: lock_timeout ran out (app.db)
LOCK_NOT_AVAILABLE = "55P03"
#: SQLSTATE classes of a server that is gone or going: connection exception, operator
#: intervention (shutdown, crash), insufficient resources
OUTAGE_CLASSES = ("08", "57", "53")
COMMITS, TRIED = "virtnet.commits", "virtnet.commits_tried"


@event.listens_for(Session, "before_commit")
def _count_try(session: Session) -> None:
    session.info[TRIED] = session.info.get(TRIED, 0) + 1


@event.listens_for(Session, "after_commit")
def _count_commit(session: Session) -> None:
    session.info[COMMITS] = session.info.get(COMMITS, 0) + 1


def commits(session: Session) -> int:
    """How many times ``session`` committed: a call that committed is never run again."""
    return int(session.info.get(COMMITS, 0))


def in_doubt(session: Session, exc: BaseException) -> bool:
    """Whether the connection was lost during a commit: the server may have committed."""
    return session.info.get(TRIED, 0) > commits(session) and is_outage(exc)


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_race(exc: BaseException) -> bool:
    """A transaction aborted by a concurrent one: running it again can succeed. That includes
    a row it read and then changed having been changed or deleted meanwhile (StaleDataError)."""
    if isinstance(exc, StaleDataError):
        return True
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    if sqlstate(exc) in RACES:
        return True
    # SQLite: two writers raced for one unique value. "database is locked" is not retried:
    # it comes after the 30 s busy timeout already waited; it is an outage (503)
    text = str(getattr(exc, "orig", "")).lower()
    return isinstance(exc, IntegrityError) and text.startswith("unique constraint failed")


def retryable(exc: BaseException, attempt: int) -> bool:
    """Running the transaction again may succeed: it lost a race, or (on the first attempt)
    the pooled connection it was given had died, the database having restarted since that
    connection was last used. Connections are not pinged before each use (app.db); the
    failure invalidates the pool's older connections, so the next attempt gets a fresh one,
    and if the database is really down that attempt fails as an outage."""
    return is_race(exc) or (is_dropped_connection(exc) and attempt == 0)


def is_dropped_connection(exc: BaseException) -> bool:
    """The statement's connection turned out dead; the pool has let go of it."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def is_lock_timeout(exc: BaseException) -> bool:
    """A statement gave up waiting for a lock another transaction holds (lock_timeout)."""
    return isinstance(exc, DBAPIError) and sqlstate(exc) == LOCK_NOT_AVAILABLE


def is_outage(exc: BaseException) -> bool:
    """The database cannot be reached (down, restarting, no connection free)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    if state is not None:
        return state.startswith(OUTAGE_CLASSES)
    # a connection refused or dropped has no SQLSTATE, nor has SQLite's "database is locked"
    return type(exc).__name__ in ("OperationalError", "InterfaceError")


def pause(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: short, growing, jittered."""
    return float(FIRST_PAUSE * 2**attempt * random.uniform(0.5, 1.5))


@dataclass(frozen=True)
class Duplicate:
    """What a unique violation says: the table, its columns and the values that clash."""

    table: str | None
    columns: tuple[str, ...]
    values: tuple[str, ...]


_PG_DETAIL = re.compile(r"Key \((?P<cols>.+?)\)=\((?P<vals>.*)\) already exists")


def duplicate(exc: IntegrityError) -> Duplicate | None:
    """The clash of a unique violation, read from PostgreSQL's or SQLite's message."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    if sqlstate(exc) == UNIQUE_VIOLATION and diag is not None:
        found = _PG_DETAIL.search(diag.message_detail or "")
        columns = tuple(c.strip() for c in found["cols"].split(",")) if found else ()
        values = tuple(v.strip() for v in found["vals"].split(",")) if found else ()
        return Duplicate(diag.table_name, columns, values)
    text = str(orig)
    if text.lower().startswith("unique constraint failed:"):
        qualified = [c.strip() for c in text.split(":", 1)[1].split(",")]
        table = qualified[0].split(".")[0] if qualified else None
        return Duplicate(table, tuple(c.split(".")[-1] for c in qualified), ())
    return None


def reset(ctx: Ctx) -> None:
    """Forget everything the failed attempt did: its transaction, objects and messages."""
    ctx.db.rollback()
    ctx.db.expunge_all()
    ctx.outbox.discard()


def run(ctx: Ctx, call: Callable[[Ctx], T], *, what: str = "transaction") -> T:
    """``call(ctx)``, run again from a clean session when a concurrent transaction made it
    fail (at most ATTEMPTS times, never after it committed)."""
    for attempt in range(ATTEMPTS):
        before = commits(ctx.db)
        try:
            return call(ctx)
        except Exception as exc:
            again = retryable(exc, attempt) and commits(ctx.db) == before
            if not again or attempt == ATTEMPTS - 1:
                raise
            log.info("%s failed (%s), attempt %d: running it again", what, exc, attempt)
            reset(ctx)
            time.sleep(pause(attempt))
    raise AssertionError("unreachable")
