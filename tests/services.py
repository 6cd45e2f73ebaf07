"""Real PostgreSQL and Redis for tests: a fresh database and Redis db per test session."""

from __future__ import annotations

import os
import secrets

import psycopg
from sqlalchemy import text

from app.db import get_engine

ADMIN_PG = os.environ.get("VIRTNET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VIRTNET_TEST_REDIS", "redis://127.0.0.1:6379")
TABLES = (
    "host_intents",
    "host_latency",
    "events",
    "operations",
    "ports",
    "domains",
    "realisations",
    "networks",
    "hosts",
    "tokens",
)


def create_pg_database() -> tuple[str, str]:
    """A new empty database; returns (its SQLAlchemy URL, its name)."""
    name = f"virtnet_t_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", name


def drop_pg_database(url: str, name: str) -> None:
    get_engine(url).dispose()
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_test_url() -> str:
    # A random logical database keeps this run's queues apart from anything else on the server.
    return f"{REDIS_URL}/{secrets.randbelow(15) + 1}"


def empty_redis(url: str) -> None:
    """Queues left by an earlier test must not reach this test's workers."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def empty_tables(url: str, tables: tuple[str, ...] = TABLES) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
