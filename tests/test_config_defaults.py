"""The sizing defaults (VIRTNET_API_WORKERS, the database pool, its lock timeout) are what the
README says, reach the engine, and a bad value stops the process with one clear line."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from app import config, db
from app.config import Settings
from tests.test_config import virtnet

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in (
        "VIRTNET_API_WORKERS",
        "VIRTNET_DB_POOL_SIZE",
        "VIRTNET_DB_MAX_OVERFLOW",
        "VIRTNET_DB_LOCK_TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    config.get_settings.cache_clear()
    yield monkeypatch
    config.get_settings.cache_clear()


def readme_default(variable: str) -> str:
    row = next(line for line in README.read_text().splitlines() if f"`{variable}`" in line)
    found = re.search(r"\|\s*(\d+)", row.split(f"`{variable}`", 1)[1])
    assert found, row
    return found.group(1)


def test_the_defaults_are_the_documented_ones(fresh_settings: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.api_workers == config.DEFAULT_API_WORKERS
    assert settings.db_pool_size == config.DEFAULT_DB_POOL_SIZE
    assert settings.db_max_overflow == config.DEFAULT_DB_MAX_OVERFLOW
    assert readme_default("VIRTNET_API_WORKERS") == str(settings.api_workers)
    assert readme_default("VIRTNET_DB_POOL_SIZE") == str(settings.db_pool_size)
    assert readme_default("VIRTNET_DB_MAX_OVERFLOW") == str(settings.db_max_overflow)
    assert settings.db_lock_timeout_seconds == config.DEFAULT_DB_LOCK_TIMEOUT
    lock_timeout = readme_default("VIRTNET_DB_LOCK_TIMEOUT_SECONDS")
    assert float(lock_timeout) == settings.db_lock_timeout_seconds
    # room for every API worker, the control worker and a command under PostgreSQL's 100
    per_process = settings.db_pool_size + settings.db_max_overflow
    assert (settings.api_workers + 2) * per_process <= 100


def pool_of(url: str) -> QueuePool:
    engine = db.get_engine(url)
    try:
        assert isinstance(engine.pool, QueuePool)
        return engine.pool
    finally:
        engine.dispose()


def test_the_engine_takes_its_pool_from_the_settings(fresh_settings: pytest.MonkeyPatch) -> None:
    # create_engine does not connect: an address nobody listens on is enough
    url = f"postgresql+psycopg://nobody@127.0.0.1:9/{uuid.uuid4().hex}"
    pool = pool_of(url)
    assert (pool.size(), pool._max_overflow) == (
        config.DEFAULT_DB_POOL_SIZE,
        config.DEFAULT_DB_MAX_OVERFLOW,
    )
    fresh_settings.setenv("VIRTNET_DB_POOL_SIZE", "3")
    fresh_settings.setenv("VIRTNET_DB_MAX_OVERFLOW", "0")
    config.get_settings.cache_clear()
    pool = pool_of(url + "x")
    assert (pool.size(), pool._max_overflow) == (3, 0)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("VIRTNET_API_WORKERS", "0", "greater than or equal to 1"),
        ("VIRTNET_API_WORKERS", "many", "integer"),
        ("VIRTNET_API_WORKERS", "65", "less than or equal to 64"),
        ("VIRTNET_DB_POOL_SIZE", "0", "greater than or equal to 1"),
        ("VIRTNET_DB_POOL_SIZE", "1e3", "integer"),
        ("VIRTNET_DB_MAX_OVERFLOW", "-1", "greater than or equal to 0"),
        ("VIRTNET_DB_MAX_OVERFLOW", "1000", "less than or equal to 500"),
        ("VIRTNET_DB_LOCK_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("VIRTNET_DB_LOCK_TIMEOUT_SECONDS", "soon", "number"),
    ],
)
def test_a_bad_size_stops_with_one_line_naming_it(variable: str, value: str, says: str) -> None:
    done = virtnet("api", **{variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"virtnet: configuration error: {variable}={value!r}: ")
    assert says in lines[0]
