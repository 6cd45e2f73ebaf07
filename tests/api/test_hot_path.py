"""What the single-port ?wait path does with fewer statements still holds (issue 12, item 1):
latency histograms add up, a migration's tap name stays reserved, a waiter that registers
after its operation ended is woken at once, and one that the listener may have missed
reads the row at once."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from app.config import Settings
from app.db import get_engine, get_sessionmaker
from app.models import HostLatency, Port
from app.services import latency, op_notify, port_lifecycle
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests.api.test_operations_superseded import result
from tests.api.test_ports_api import add_host
from tests.api.test_wait_notify import dsn

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5e"}


def test_latency_samples_add_up_in_their_buckets(api_settings: Settings) -> None:
    with get_sessionmaker(api_settings.effective_database_url)() as db:
        ctx = Ctx(db, Outbox(None), api_settings)
        latency.observe(ctx, host="h1", action="plug", samples=[0.0001, 0.003])
        db.commit()
        latency.observe(ctx, host="h1", action="plug", samples=[0.003, 9.0])
        latency.observe(ctx, host="h1", action="unplug", samples=[])  # nothing: no row
        db.commit()
        db.expire_all()
        rows = latency.histograms(ctx)
    assert [(r.host, r.action, r.count) for r in rows] == [("h1", "plug", 3 + 1)]
    counts = rows[0].buckets["counts"]
    assert len(counts) == len(latency.BUCKETS) + 1
    assert counts[0] == 1  # 0.1 ms
    assert counts[latency.BUCKETS.index(0.005)] == 2  # 3 ms, twice
    assert counts[-1] == 1  # above the last bucket
    assert sum(counts) == 4
    assert abs(rows[0].total_seconds - 9.0061) < 1e-9


def test_an_older_histogram_with_fewer_buckets_still_counts(api_settings: Settings) -> None:
    with get_sessionmaker(api_settings.effective_database_url)() as db:
        ctx = Ctx(db, Outbox(None), api_settings)
        db.add(HostLatency(host="h1", action="plug", buckets={"counts": [5]}, count=5))
        db.commit()
        latency.observe(ctx, host="h1", action="plug", samples=[0.0001, 0.003])
        db.commit()
        db.expire_all()
        counts = latency.histograms(ctx)[0].buckets["counts"]
    assert counts[0] == 5 + 1 and sum(counts) == 7


def test_a_migration_s_tap_name_on_the_host_is_not_given_to_a_new_port(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    add_host(api_settings, "hostB")
    client.post("/v1/networks", json={"name": "n", "bridge": {"mac_table_manager": "libvirt"}})
    assert client.post("/v1/networks/n/start").status_code == 200
    first = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostB"})
    assert first.status_code == 202, first.text
    # the port on hostB is being migrated to hostA, where it holds vnet0
    migration = {"target": "hostA", "target_tap": "vnet0", "phase": "plugging"}
    with get_sessionmaker(api_settings.effective_database_url)() as db:
        db.execute(update(Port).values(migration=migration))
        db.commit()
    made = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert made.status_code == 202, made.text
    with get_sessionmaker(api_settings.effective_database_url)() as db:
        assert db.get(Port, made.json()["id"]).tap == "vnet1"  # type: ignore[union-attr]


def _listening(listener: op_notify.Listener) -> None:
    assert listener._ready.wait(10), "the listener did not connect"


def _notify(settings: Settings, op_id: str) -> None:
    with psycopg.connect(dsn(settings), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (op_notify.CHANNEL, op_id))


def _woken_within(woken: Any, seconds: float) -> bool:
    return bool(woken.wait(seconds))


def test_a_waiter_the_listener_covers_sleeps_until_its_notification(
    pg_url: str, redis_url: str, tmp_path: Any
) -> None:
    settings = Settings(database_url=pg_url, broker_url=redis_url, state_dir=tmp_path)
    listener = op_notify.Listener(pg_url)
    _listening(listener)
    since = time.monotonic()  # the request began after the listener was listening
    with listener.watch("op-1", ready_within=1.0, since=since) as woken:
        assert not woken.is_set()  # nothing to read yet: it ends with a notification
        _notify(settings, "op-2")
        assert not _woken_within(woken, 0.3)
        _notify(settings, "op-1")
        assert _woken_within(woken, 10)


def test_a_waiter_registering_after_its_operation_ended_is_woken_at_once(
    pg_url: str, redis_url: str, tmp_path: Any
) -> None:
    settings = Settings(database_url=pg_url, broker_url=redis_url, state_dir=tmp_path)
    listener = op_notify.Listener(pg_url)
    _listening(listener)
    since = time.monotonic()
    _notify(settings, "op-early")  # it ended before its waiter registered
    deadline = time.monotonic() + 10
    while "op-early" not in listener._heard and time.monotonic() < deadline:
        time.sleep(0.01)
    with listener.watch("op-early", ready_within=1.0, since=since) as woken:
        assert woken.is_set()


def test_a_waiter_from_before_the_listener_listened_reads_at_once(
    pg_url: str, redis_url: str, tmp_path: Any
) -> None:
    since = time.monotonic()  # the request began before the listener connected
    listener = op_notify.Listener(pg_url)
    _listening(listener)
    with listener.watch("op-3", ready_within=1.0, since=since) as woken:
        assert woken.is_set()  # a notification may have been missed: read the row now
    with listener.watch("op-3", ready_within=1.0) as woken:
        assert woken.is_set()  # no time given: always read first


def _reads_before_first_write(settings: Settings, results: list[dict[str, Any]]) -> int:
    """How many statements ``port_lifecycle.record`` reads before it writes anything."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.lstrip().split(None, 1)[0].upper())

    engine = get_engine(settings.effective_database_url)
    event.listen(engine, "before_cursor_execute", note)
    try:
        with get_sessionmaker(settings.effective_database_url)() as session:
            port_lifecycle.record(
                Ctx(session, Outbox(None), settings), host="hostA", results=results
            )
    finally:
        event.remove(engine, "before_cursor_execute", note)
    writes = [i for i, kind in enumerate(seen) if kind in ("INSERT", "UPDATE", "DELETE")]
    return len([k for k in seen[: writes[0]] if k == "SELECT"])


def test_a_lone_port_s_report_finds_and_locks_its_rows_in_one_statement(
    client: TestClient, api_settings: Settings
) -> None:
    """A single plug's report (its operation waits for it alone) reads its port, operation
    and network in one locking statement; a port whose operation waits for others too takes
    the general path (find, lock ports, lock operations). Both are recorded alike."""
    add_host(api_settings, "hostA")
    client.post("/v1/networks", json={"name": "n", "bridge": {"mac_table_manager": "libvirt"}})
    assert client.post("/v1/networks/n/start").status_code == 200
    lone = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"}).json()
    pair = client.post("/v1/networks/n/ports", json=[{"owner": OWNER, "host": "hostA"}] * 2)
    bulk_op, (first, _second) = pair.json()["operation"]["id"], pair.json()["ports"]

    def row(port_id: str) -> Port:
        with get_sessionmaker(api_settings.effective_database_url)() as db:
            found = db.get(Port, port_id)
            assert found is not None
            return found

    assert _reads_before_first_write(api_settings, [result(row(lone["id"]))]) == 1
    assert client.get(f"/v1/operations/{lone['operation_id']}").json()["state"] == "succeeded"
    assert client.get(f"/v1/networks/n/ports/{lone['id']}").json()["state"] == "plugged"

    # the one-statement try finds nothing; then find, lock the ports, lock the operations
    assert _reads_before_first_write(api_settings, [result(row(first["id"]))]) == 4
    assert client.get(f"/v1/networks/n/ports/{first['id']}").json()["state"] == "plugged"
    waiting = client.get(f"/v1/operations/{bulk_op}").json()
    assert waiting["state"] == "running"  # the second port has not reported
