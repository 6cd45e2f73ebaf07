"""A host's report of ports it found as they were (a reconcile reports every port) changes no
row and ends no operation; the ports of the same report that did change are recorded as
before (issue 12, item 4); the whole state sent to a (re)joining host, read from the ports'
columns, is each port's desired state. On both databases; reports are recorded as the
control worker records them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import get_sessionmaker
from app.messages import ReconcileHost
from app.messages.names import RECONCILE_HOST
from app.models import Event, Operation, Port
from app.services import port_lifecycle, realisation
from app.services.context import Ctx
from app.services.outbox import Outbox
from app.services.ports import host_port
from tests.api.test_operations_superseded import result
from tests.api.test_ports_api import active_net, port  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("active_net")

#: more than port_lifecycle._WORTH_READING: the report is filtered before it locks
COUNT = 40


def ports(settings: Settings) -> dict[str, Port]:
    with get_sessionmaker(settings.effective_database_url)() as session:
        found = {p.id: p for p in session.query(Port)}
        session.expunge_all()
        return found


def record(settings: Settings, results: list[dict[str, Any]]) -> None:
    with get_sessionmaker(settings.effective_database_url)() as session:
        ctx = Ctx(session, Outbox(None), settings)
        port_lifecycle.record(ctx, host="hostA", results=results)


def snapshot(settings: Settings) -> dict[str, tuple[Any, ...]]:
    """Every port row and operation row as stored, and the number of events."""
    with get_sessionmaker(settings.effective_database_url)() as session:
        rows: dict[str, tuple[Any, ...]] = {
            p.id: (p.state, p.error, p.generation, p.operation_id, p.spec, p.updated_at)
            for p in session.query(Port)
        }
        for o in session.query(Operation):
            rows[o.id] = (o.state, o.pending, o.error, o.finished_at)
        rows["events"] = (session.query(Event).count(),)
        return rows


def many(count: int) -> list[dict[str, Any]]:
    return [port(id=str(uuid.uuid4())) for _ in range(count)]


def plugged_bulk(client: TestClient, settings: Settings) -> str:
    created = client.post("/v1/networks/n/ports", json=many(COUNT))
    assert created.status_code == 202, created.text
    record(settings, [result(p) for p in ports(settings).values()])
    op = client.get(f"/v1/operations/{created.json()['operation']['id']}").json()
    assert op["state"] == "succeeded", op
    return str(op["id"])


def test_a_report_of_ports_as_they_are_changes_no_row_and_ends_no_operation(
    client: TestClient, api_settings: Settings
) -> None:
    plugged_bulk(client, api_settings)
    before = snapshot(api_settings)
    record(api_settings, [result(p) for p in ports(api_settings).values()])  # a reconcile's
    assert snapshot(api_settings) == before  # no row written, no event
    listed = client.get("/v1/networks/n/ports").json()
    assert len(listed) == COUNT and {p["state"] for p in listed} == {"plugged"}


def test_the_ports_a_report_changes_are_recorded_among_those_it_does_not(
    client: TestClient, api_settings: Settings
) -> None:
    plugged_bulk(client, api_settings)
    settled = ports(api_settings)
    new = client.post("/v1/networks/n/ports", json=port()).json()  # plugging, waited for
    first, second, third, fourth = sorted(settled)[:4]
    gone = client.delete(f"/v1/networks/n/ports/{first}").json()  # unplugging, generation + 1
    before = snapshot(api_settings)
    now = ports(api_settings)
    results = [result(p) for p in now.values() if p.id != first]
    results.append(result(settled[first]))  # the host plugged it before it heard of the delete
    changed = {second: {"outbound": "police"}, third: {"error": None, "generation": 99}}
    results = [{**r, **changed.get(r["port_id"], {})} for r in results]
    failing = {"state": "failed", "error": "boom", "error_code": "kernel"}
    results = [{**r, **failing} if r["port_id"] == fourth else r for r in results]
    record(api_settings, results)

    after = snapshot(api_settings)
    assert client.get(f"/v1/operations/{new['operation_id']}").json()["state"] == "succeeded"
    assert after[new["id"]][0] == "plugged"
    # the delete stays: the late plug was for the generation before it
    assert after[first][:4] == before[first][:4] and after[first][0] == "unplugging"
    assert client.get(f"/v1/operations/{gone['id']}").json()["state"] == "running"
    assert after[second][4]["outbound_mode"] == "police"
    assert after[third] == before[third]  # a report of another generation: ignored
    assert after[fourth][:2] == ("failed", "boom")
    untouched = set(settled) - {first, second, third, fourth}
    assert len(untouched) == COUNT - 4
    assert {i: after[i] for i in untouched} == {i: before[i] for i in untouched}

    record(api_settings, [result(ports(api_settings)[first], "absent")])
    assert client.get(f"/v1/operations/{gone['id']}").json()["state"] == "succeeded"
    assert first not in ports(api_settings)


def test_a_port_that_an_operation_waits_for_is_recorded_though_it_looks_as_it_was(
    client: TestClient, api_settings: Settings
) -> None:
    """A suspend leaves its ports plugged and waits for their report: among ports the
    report leaves as they were, it still ends, and the domain is paused."""
    macs = ["52:54:00:61:00:01", "52:54:00:61:00:02"]
    interfaces = [{"type": "network", "source": {"network": "n"}, "mac": m} for m in macs]
    body = {"name": "vm1", "host": "hostA", "interfaces": interfaces}
    assert client.post("/v1/domains", json=body).status_code == 201
    start = client.post("/v1/domains/vm1/start").json()
    plugged_bulk(client, api_settings)  # the domain's two ports report with the others
    assert client.get(f"/v1/operations/{start['id']}").json()["state"] == "succeeded"
    suspend = client.post("/v1/domains/vm1/suspend").json()
    waiting = {p.id for p in ports(api_settings).values() if p.operation_id == suspend["id"]}
    assert len(waiting) == 2
    assert {ports(api_settings)[i].state for i in waiting} == {"plugged"}
    record(api_settings, [result(p) for p in ports(api_settings).values()])
    assert client.get(f"/v1/operations/{suspend['id']}").json()["state"] == "succeeded"
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "paused"


def test_the_whole_state_sent_to_a_host_has_each_port_as_its_row_says(
    client: TestClient, api_settings: Settings
) -> None:
    """plan_full reads the ports' columns, not ORM objects: the same desired state."""
    plugged_bulk(client, api_settings)
    first, second = sorted(ports(api_settings))[:2]
    client.delete(f"/v1/networks/n/ports/{first}")  # unplugging: sent as not present
    record(api_settings, [result(ports(api_settings)[second], "failed", error="boom")])
    with get_sessionmaker(api_settings.effective_database_url)() as session:
        ctx = Ctx(session, Outbox(None), api_settings)
        realisation.plan_full(ctx, "hostA", comeback=False)
        sent = [ReconcileHost.read(m) for n, m, _ in ctx.outbox.pending if n == RECONCILE_HOST]
        rows = sorted(session.query(Port), key=lambda p: p.tap)
        want = [host_port(p, present=p.state != "unplugging") for p in rows if p.id != second]
        session.rollback()
    assert len(sent) == 1 and [n.name for n in sent[0].networks] == ["n"]
    assert sent[0].ports == want  # the failed port is left out: the host removes its tap
    assert [p.present for p in sent[0].ports].count(False) == 1
