"""Alembic is the only way the schema is made: it must match the models and undo cleanly."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from app.models import Base
from tests import services

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def empty_pg() -> Iterator[str]:
    url, name = services.create_pg_database()
    yield url
    services.drop_pg_database(url, name)


def _config(url: str) -> Config:
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_upgrade_on_empty_postgres_matches_models_and_downgrades(empty_pg: str) -> None:
    config = _config(empty_pg)
    command.upgrade(config, "head")
    engine = create_engine(empty_pg, poolclass=pool.NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations drifted: {diff}"
    command.downgrade(config, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    engine.dispose()
