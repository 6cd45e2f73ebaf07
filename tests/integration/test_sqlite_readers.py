"""On the embedded SQLite, readers (GETs, event streams) never hold the write lock."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Event
from tests import services
from tests.cluster import Cluster


@pytest.fixture
def sqlite_settings(sqlite_url: str, redis_url: str, tmp_path: Path) -> Settings:
    services.empty_tables(sqlite_url)
    return Settings(database_url=sqlite_url, broker_url=redis_url, state_dir=tmp_path)


def _can_take_write_lock(url: str) -> bool:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        conn.close()


def test_an_open_read_transaction_does_not_block_a_writer(sqlite_url: str) -> None:
    services.empty_tables(sqlite_url)
    with get_sessionmaker(sqlite_url, read_only=True)() as reader:
        reader.execute(select(Event.id).limit(1))  # its transaction stays open
        assert _can_take_write_lock(sqlite_url)
        with get_sessionmaker(sqlite_url)() as writer:
            writer.add(Event(kind="test.write", subject="x", data={}))
            writer.commit()
        with pytest.raises(RuntimeError, match="read-only session"):
            reader.add(Event(kind="test.write", subject="y", data={}))
            reader.flush()


def test_event_streams_leave_writers_alone(sqlite_settings: Settings, tmp_path: Path) -> None:
    """The dashboard's stream and two `virtnet event --loop`: writes neither wait nor fail."""
    cluster = Cluster(sqlite_settings, tmp_path)
    try:
        base = cluster.serve_http()
        headers = dict(cluster.api.headers)
        client = httpx.Client(timeout=httpx.Timeout(10, read=None), headers=headers)
        opened = threading.Barrier(4, timeout=10)

        def hold_open() -> None:
            # the test closes the client under the reader
            with (
                contextlib.suppress(httpx.HTTPError, threading.BrokenBarrierError),
                client.stream("GET", f"{base}/v1/events") as response,
            ):
                assert response.status_code == 200
                opened.wait()
                for _ in response.iter_lines():
                    pass

        readers = [threading.Thread(target=hold_open, daemon=True) for _ in range(3)]
        for reader in readers:
            reader.start()
        opened.wait()
        time.sleep(0.5)  # several polls of each stream
        # no stream holds the write lock, not even between its polls
        assert all(_can_take_write_lock(sqlite_settings.effective_database_url) for _ in range(10))
        for i in range(10):
            r = client.post(f"{base}/v1/networks", json={"name": f"w{i}"})
            assert r.status_code == 201, r.text
            r = client.get(f"{base}/v1/networks/w{i}")
            assert r.status_code == 200, r.text
        client.close()
    finally:
        cluster.close()
