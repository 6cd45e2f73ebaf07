"""A ?wait request learns its result from PostgreSQL's NOTIFY, not by polling (issue 12, 1)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from app.config import Settings
from app.services import op_notify, operations
from tests.api.conftest import client_for, make_token
from tests.api.test_operations_superseded import report
from tests.api.test_ports_api import add_host

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5e"}


def dsn(settings: Settings) -> str:
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    return url.render_as_string(False)


@pytest.fixture
def pg_client(pg_url: str, redis_url: str, tmp_path: Any) -> tuple[TestClient, Settings]:
    from app.api.main import create_app
    from tests import services

    services.empty_tables(pg_url)
    settings = Settings(database_url=pg_url, broker_url=redis_url, state_dir=tmp_path)
    client = client_for(create_app(settings), make_token(settings, "operator"))
    add_host(settings, "hostA")
    client.post("/v1/networks", json={"name": "lab", "bridge": {"name": "virbr9"}})
    assert client.post("/v1/networks/lab/start").status_code == 200
    return client, settings


def test_the_commit_that_ends_an_operation_notifies_its_id(
    pg_client: tuple[TestClient, Settings],
) -> None:
    client, settings = pg_client
    with psycopg.connect(dsn(settings), autocommit=True) as listening:
        listening.execute(f"LISTEN {op_notify.CHANNEL}")
        port = client.post("/v1/networks/lab/ports", json={"owner": OWNER, "host": "hostA"})
        assert port.status_code == 202, port.text
        assert list(listening.notifies(timeout=0.2)) == []  # running: nothing yet
        report(settings, "plugged")
        notes = list(listening.notifies(timeout=10, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [
        (op_notify.CHANNEL, port.json()["operation_id"])
    ]


def test_a_waiting_request_is_woken_by_the_notification(
    pg_client: tuple[TestClient, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fallback poll longer than the wait, only the notification can end the wait
    with the port plugged; the API's LISTEN connection shows in pg_stat_activity."""
    client, settings = pg_client
    monkeypatch.setattr(operations, "FALLBACK_POLL", 600.0)
    answer: dict[str, Any] = {}

    def post() -> None:
        body = {"owner": OWNER, "host": "hostA"}
        answer["r"] = client.post("/v1/networks/lab/ports?wait=60", json=body)

    waiter = threading.Thread(target=post)
    waiter.start()
    with psycopg.connect(dsn(settings), autocommit=True) as probe:
        query = (
            "SELECT query FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()"
        )
        for _ in range(200):
            rows = probe.execute(query, (op_notify.APPLICATION,)).fetchall()
            if rows:
                break
            time.sleep(0.05)
        # other apps of this test session may listen on the same database too
        assert f"LISTEN {op_notify.CHANNEL}" in {r[0] for r in rows}
    time.sleep(0.3)  # let the waiter read the row (still plugging) and go to sleep
    report(settings, "plugged")
    waiter.join(timeout=30)
    assert not waiter.is_alive(), "the wait was not woken by the notification"
    assert answer["r"].status_code == 201, answer["r"].text
    assert answer["r"].json()["state"] == "plugged"
