"""Engine and session factory; one engine per database URL per process."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

#: execution option of a read-only session's connections
READ_ONLY = "virtnet_read_only"


def lock_timeout_ms() -> int:
    """VIRTNET_DB_LOCK_TIMEOUT_SECONDS, as PostgreSQL's lock_timeout wants it."""
    from app.config import get_settings

    return max(1, round(get_settings().db_lock_timeout_seconds * 1000))


def pool_limits() -> tuple[int, int]:
    """(pool_size, max_overflow) from VIRTNET_DB_POOL_SIZE and VIRTNET_DB_MAX_OVERFLOW."""
    from app.config import get_settings

    settings = get_settings()
    return settings.db_pool_size, settings.db_max_overflow


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the API read while a worker writes; the driver's own BEGIN handling
            # is replaced so "BEGIN IMMEDIATE" serialises writers instead of failing late.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # A reader takes no lock in WAL mode (a deferred BEGIN); a writer takes the write
            # lock up front, where the busy timeout applies, instead of failing on upgrade.
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    size, overflow = pool_limits()
    options = {"options": f"-c lock_timeout={lock_timeout_ms()}"}
    engine = create_engine(url, pool_size=size, max_overflow=overflow, connect_args=options)
    _ping_when_idle(engine)
    return engine


#: a pooled connection unused for longer than this is pinged before it is handed out
PING_AFTER_IDLE_SECONDS = 1.0
#: key in a pooled connection's ``info``: when it went back to the pool
_IDLE_SINCE = "virtnet_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection at checkout only if it sat in the pool for a while: a ping before
    every checkout (pool_pre_ping) is a round trip on each transaction, on the hot path of
    every plug. A connection in steady use that the database dropped meanwhile (a restart
    within the second) fails on its first statement instead, and whoever runs the
    transaction runs it again once on a fresh one (app.services.retry.retryable, the API's
    Transactions middleware, operations.wait_port)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool drops it and hands out another one
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


@lru_cache(maxsize=16)
def get_sessionmaker(url: str, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for ``url``; ``read_only`` ones never take SQLite's write lock (and must not
    write: on SQLite a write in a deferred transaction can fail with "database is locked")."""
    engine = get_engine(url)
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind, expire_on_commit=False, info={READ_ONLY: read_only})


@event.listens_for(Session, "before_flush")
def _refuse_writes_when_read_only(session: Session, _context: object, _instances: object) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("a read-only session (a GET, or the event stream) tried to write")
