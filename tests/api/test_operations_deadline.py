"""An operation whose host does not answer within the deadline fails, naming the host; its
ports stay wanted and a late report still moves them along (issue 10, item 4)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Domain, Port
from app.services import hosts
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests.api.test_operations_superseded import A, op, report
from tests.api.test_ports_api import add_host

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5e"}
DEADLINE = 0.05


def sweep(settings: Settings) -> None:
    """The control worker's periodic pass, once the deadline has passed."""
    time.sleep(DEADLINE * 2)
    quick = settings.model_copy(update={"operation_deadline_seconds": DEADLINE})
    with get_sessionmaker(settings.effective_database_url)() as session:
        hosts.sweep(Ctx(session, Outbox(None), quick))


def test_a_silent_host_fails_the_plug_and_a_late_report_still_counts(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    client.post("/v1/networks", json={"name": "lab", "bridge": {"name": "virbr9"}})
    assert client.post("/v1/networks/lab/start").status_code == 200
    port = client.post("/v1/networks/lab/ports", json={"owner": OWNER, "host": "hostA"})
    assert port.status_code == 202, port.text
    plug = port.json()["operation_id"]
    sweep(api_settings)
    ended = op(client, plug)
    assert (ended["state"], ended["error"]) == (
        "failed",
        f"host hostA did not answer within {DEADLINE:g} s",
    )
    path = f"/v1/networks/lab/ports/{port.json()['id']}"
    assert client.get(path).json()["state"] == "plugging"  # still wanted
    report(api_settings, "plugged")
    assert client.get(path).json()["state"] == "plugged"
    unplug = client.delete(path).json()
    sweep(api_settings)
    assert op(client, unplug["id"])["state"] == "failed"
    report(api_settings, "absent")  # the host came back and removed it: the row goes
    assert client.get(path).status_code == 404


def test_a_migration_to_a_silent_host_is_called_off(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    add_host(api_settings, "hostB")
    client.post("/v1/networks", json={"name": "lab", "bridge": {"name": "virbr9"}})
    assert client.post("/v1/networks/lab/start").status_code == 200
    interfaces = [{"type": "network", "source": {"network": "lab"}, "mac": A}]
    body = {"name": "vm1", "host": "hostA", "interfaces": interfaces}
    assert client.post("/v1/domains", json=body).status_code == 201
    client.post("/v1/domains/vm1/start")
    report(api_settings, "plugged")
    moving = client.post("/v1/domains/vm1/migrate", json={"host": "hostB"})
    assert moving.status_code == 202, moving.text
    sweep(api_settings)
    ended = op(client, moving.json()["id"])
    assert ended["state"] == "failed"
    assert ended["error"].endswith(f"host hostB did not answer within {DEADLINE:g} s")
    with get_sessionmaker(api_settings.effective_database_url)() as session:
        assert session.query(Domain).one().host == "hostA"
        assert [(p.host, p.migration) for p in session.query(Port)] == [("hostA", None)]
