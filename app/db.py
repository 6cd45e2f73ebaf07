"""Engine and session factory; one engine per database URL per process."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

#: execution option of a read-only session's connections
READ_ONLY = "virtnet_read_only"


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
    return create_engine(url, pool_pre_ping=True, pool_size=size, max_overflow=overflow)


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
