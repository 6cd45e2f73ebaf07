"""A request stuck behind another transaction's lock gives up after
VIRTNET_DB_LOCK_TIMEOUT_SECONDS (PostgreSQL's lock_timeout): a 503 that says so, with
nothing changed, instead of a request that hangs as long as the other transaction does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import config
from app.api.main import create_app
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Port
from app.services.schema import upgrade_database
from tests import services
from tests.api.conftest import client_for, make_token
from tests.api.test_ports_api import add_host
from tests.api.test_wait_notify import dsn

OWNER = {"name": "vm", "uuid": "0c6f3c1e-7a52-4b8e-9f1d-2a3b4c5d6e7f"}


@pytest.fixture
def short_lock_timeout(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> Iterator[Settings]:
    """Settings on a database of its own, whose engine is made with a 0.5 s lock timeout."""
    monkeypatch.setenv("VIRTNET_DB_LOCK_TIMEOUT_SECONDS", "0.5")
    config.get_settings.cache_clear()
    url, name = services.create_pg_database()
    try:
        settings = Settings(database_url=url, broker_url=redis_url, state_dir=tmp_path)
        upgrade_database(settings)
        yield settings
    finally:
        services.drop_pg_database(url, name)
        config.get_settings.cache_clear()


def test_a_request_behind_a_stuck_transaction_answers_503_and_changes_nothing(
    short_lock_timeout: Settings,
) -> None:
    settings = short_lock_timeout
    add_host(settings, "hostA")
    client: TestClient = client_for(create_app(settings), make_token(settings, "operator"))
    assert client.post("/v1/networks?start=true", json={"name": "n"}).status_code == 201
    with psycopg.connect(dsn(settings)) as stuck:
        # a transaction that holds the network's row and does not end (an admin's psql)
        stuck.execute("SELECT id FROM networks WHERE name = 'n' FOR UPDATE")
        assert stuck.execute("SHOW lock_timeout").fetchone() == ("0",)  # not ours: no limit
        r = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) > 0
        detail = r.json()["detail"]
        assert "VIRTNET_DB_LOCK_TIMEOUT_SECONDS" in detail and "nothing was changed" in detail
    with get_sessionmaker(settings.effective_database_url)() as db:
        assert db.scalar(select(func.count(Port.id))) == 0
        assert db.connection().exec_driver_sql("SHOW lock_timeout").scalar() == "500ms"
    again = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert again.status_code == 202, again.text  # the other transaction ended
