"""A single port's room on its host: the tap name it gets, a full bridge, a MAC already used.

PostgreSQL answers these from its indexes in one statement (app.services.port_room), SQLite
from the host's ports read into Python; every test runs on both and expects the same."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Network, Port
from app.services.ports import MAX_PORTS_PER_BRIDGE
from tests.api.conftest import assert_problem
from tests.api.test_ports_api import add_host

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5e"}


def _network(client: TestClient, settings: Settings) -> int:
    add_host(settings, "hostA")
    made = client.post("/v1/networks", json={"name": "n", "bridge": {"name": "vnr0"}})
    assert made.status_code == 201, made.text
    assert client.post("/v1/networks/n/start").status_code == 200
    with get_sessionmaker(settings.effective_database_url)() as db:
        return int(db.scalar(select(Network.id).where(Network.name == "n")))  # type: ignore[arg-type]


def _row(network_id: int | None, tap: str, *, bridge: str = "vnr0", **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "network_id": network_id,
        "host": "hostA",
        "owner_name": "other",
        "owner_uuid": str(uuid.uuid4()),
        "mac": f"52:54:00:{uuid.uuid4().hex[:6]}",
        "tap": tap,
        "bridge": bridge,
        "spec": {},
        "state": "plugged",
        **extra,
    }


def _add(settings: Settings, rows: list[dict[str, Any]]) -> None:
    with get_sessionmaker(settings.effective_database_url)() as db:
        db.execute(insert(Port), rows)
        db.commit()


def _new_tap(client: TestClient, settings: Settings) -> str:
    made = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert made.status_code == 202, made.text
    with get_sessionmaker(settings.effective_database_url)() as db:
        return str(
            db.scalar(text("SELECT tap FROM ports WHERE id = :id"), {"id": made.json()["id"]})
        )


def test_a_new_port_gets_the_lowest_vnet_name_no_live_port_or_migration_holds(
    client: TestClient, api_settings: Settings
) -> None:
    network_id = _network(client, api_settings)
    migrating = {"target": "hostA", "target_tap": "vnet4", "phase": "plugging"}
    _add(
        api_settings,
        [
            _row(network_id, "vnet0"),
            _row(network_id, "vnet1", bridge="other0"),  # any bridge of the host counts
            _row(network_id, "vnet2", state="failed"),  # no device: its name is free
            _row(network_id, "vnet3"),
            # names lowest_free_tap never makes do not hold vnet7 or vnet8
            _row(network_id, "vnet007"),
            _row(network_id, "vnetx"),
            _row(network_id, "vnet08"),
            # a port of another host, migrating here, holds vnet4 on hostA
            {**_row(network_id, "vnet9"), "host": "hostB", "migration": migrating},
        ],
    )
    assert _new_tap(client, api_settings) == "vnet2"
    assert _new_tap(client, api_settings) == "vnet5"  # 3 is live, 4 reserved
    assert _new_tap(client, api_settings) == "vnet6"


def test_a_port_on_a_full_bridge_is_refused_and_changes_nothing(
    client: TestClient, api_settings: Settings
) -> None:
    network_id = _network(client, api_settings)
    _add(api_settings, [_row(network_id, f"vnet{i}") for i in range(MAX_PORTS_PER_BRIDGE)])
    refused = client.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert_problem(refused, 409, says="already has 1023 ports, the most a Linux bridge takes")
    assert len(client.get("/v1/networks/n/ports").json()) == MAX_PORTS_PER_BRIDGE


def test_a_mac_used_on_the_network_is_refused_naming_its_port(
    client: TestClient, api_settings: Settings
) -> None:
    network_id = _network(client, api_settings)
    holder = _row(network_id, "vnet0", mac="52:54:00:aa:bb:cc", owner_name="vm-a")
    _add(api_settings, [holder])
    body = {"owner": OWNER, "host": "hostA", "mac": "52:54:00:aa:bb:cc"}
    refused = client.post("/v1/networks/n/ports", json=body)
    assert_problem(refused, 409, says=f"by port {holder['id']} (owner 'vm-a')")
    assert [p["id"] for p in client.get("/v1/networks/n/ports").json()] == [holder["id"]]
