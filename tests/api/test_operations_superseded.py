"""A later operation that takes a port over ends the earlier one with a reason, and host reports
count once (issue 10, item 4). The host's reports are applied as the control worker does."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Port
from app.services import port_lifecycle
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests.api.test_ports_api import add_host


def result(p: Port, state: str = "plugged", **extra: Any) -> dict[str, Any]:
    """The host's result for ``p`` at its current generation, as a ports report has it."""
    return {
        "port_id": p.id,
        "generation": p.generation,
        "tap": p.tap,
        "bridge": p.bridge,
        "guest_mac": p.mac,
        "state": state,
        "error": None,
        "seconds": 0.001,
        **extra,
    }


def report(settings: Settings, state: str, *macs: str) -> None:
    """hostA reports the ports with these MACs (all of them when none is named) as ``state``,
    at their current generation, as the control worker applies a report."""
    with get_sessionmaker(settings.effective_database_url)() as session:
        ports = [p for p in session.query(Port) if not macs or p.mac in macs]
        results = [result(p, state) for p in ports]
        port_lifecycle.record(Ctx(session, Outbox(None), settings), host="hostA", results=results)


def op(client: TestClient, op_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/operations/{op_id}").json()
    return body


A, B = "52:54:00:60:00:01", "52:54:00:60:00:02"


def running_domain(client: TestClient, settings: Settings) -> None:
    add_host(settings, "hostA")
    bridge = {"name": "virbr9", "mac_table_manager": "libvirt"}
    client.post("/v1/networks", json={"name": "lab", "bridge": bridge})
    assert client.post("/v1/networks/lab/start").status_code == 200
    interfaces = [{"type": "network", "source": {"network": "lab"}, "mac": m} for m in (A, B)]
    body = {"name": "vm1", "host": "hostA", "interfaces": interfaces}
    assert client.post("/v1/domains", json=body).status_code == 201
    start = client.post("/v1/domains/vm1/start").json()
    report(settings, "plugged")
    assert op(client, start["id"])["state"] == "succeeded"
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "running"


def test_a_stop_supersedes_the_suspend_whose_ports_had_not_all_reported(
    client: TestClient, api_settings: Settings
) -> None:
    running_domain(client, api_settings)
    suspend = client.post("/v1/domains/vm1/suspend").json()
    report(api_settings, "plugged", A)
    report(api_settings, "plugged", A)  # redelivered: counted once
    assert op(client, suspend["id"])["state"] == "running"
    stop = client.post("/v1/domains/vm1/stop?force=true").json()
    ended = op(client, suspend["id"])
    assert ended["state"] == "failed"
    assert ended["error"] == f"superseded by operation {stop['id']}"
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "stopping"
    report(api_settings, "absent")
    assert op(client, stop["id"])["state"] == "succeeded"
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "shut_off"
    assert client.get("/v1/networks/lab/ports").json() == []


def test_an_operation_whose_ports_all_reported_is_not_touched_by_a_later_one(
    client: TestClient, api_settings: Settings
) -> None:
    running_domain(client, api_settings)
    suspend = client.post("/v1/domains/vm1/suspend").json()
    report(api_settings, "plugged")
    assert op(client, suspend["id"])["state"] == "succeeded"
    resume = client.post("/v1/domains/vm1/resume").json()
    assert op(client, suspend["id"])["state"] == "succeeded"
    report(api_settings, "plugged")
    assert op(client, resume["id"])["state"] == "succeeded"
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "running"


def test_a_force_stop_cancels_a_domain_start_and_the_domain_settles(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    client.post("/v1/networks", json={"name": "lab", "bridge": {"name": "virbr9"}})
    assert client.post("/v1/networks/lab/start").status_code == 200
    interfaces = [{"type": "network", "source": {"network": "lab"}, "mac": A}]
    body = {"name": "vm1", "host": "hostA", "interfaces": interfaces}
    assert client.post("/v1/domains", json=body).status_code == 201
    start = client.post("/v1/domains/vm1/start").json()
    assert client.post("/v1/networks/lab/stop?force=true").status_code == 200
    ended = op(client, start["id"])
    assert (ended["state"], ended["error"]) == ("failed", "cancelled by force stop of network lab")
    report(api_settings, "absent")
    with get_sessionmaker(api_settings.effective_database_url)() as session:
        assert session.query(Port).count() == 0  # released once the host said absent
    assert client.get("/v1/domains/vm1").json()["status"]["state"] == "shut_off"


def test_a_report_for_a_port_gone_resends_a_removal_for_a_late_plug_only(
    api_settings: Settings,
) -> None:
    """A late plug of a deleted port is taken back out; a failed removal is not sent again (a
    tap whose name a new port owns refuses it, and would do so for ever)."""
    sent: list[tuple[str, dict[str, Any], str]] = []
    for state, resent in (("plugged", 1), ("failed", 0), ("absent", 0)):
        result = {
            "port_id": "0b7a4d6e-3c1f-4e8a-9d2b-5f6a7b8c9d0e",
            "generation": 1,
            "tap": "vnet7",
            "bridge": "virbr9",
            "guest_mac": A,
            "state": state,
            "error": None if state != "failed" else "vnet7 exists for another owner",
        }
        before = len(sent)
        with get_sessionmaker(api_settings.effective_database_url)() as session:
            ctx = Ctx(session, Outbox(lambda *task: sent.append(task)), api_settings)
            port_lifecycle.record(ctx, host="hostA", results=[result])
        assert len(sent) - before == resent, (state, sent)
    _, kwargs, queue = sent[0]
    assert queue == "host.hostA" and '"present": false' in json.dumps(kwargs), kwargs
