"""The bulk form of POST …/ports refuses a bad list as a whole (issue 12), on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem
from tests.api.test_ports_api import active_net, port  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("active_net")


def many(count: int) -> list[dict[str, Any]]:
    return [port(id=str(uuid.UUID(int=i + 1))) for i in range(count)]


def test_a_bulk_request_makes_one_operation_for_all_its_ports(client: TestClient) -> None:
    r = client.post("/v1/networks/n/ports", json=many(3))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["operation"]["state"] == "running"
    assert [p["actual"]["tap"] for p in body["ports"]] == ["vnet0", "vnet1", "vnet2"]
    assert {p["operation_id"] for p in body["ports"]} == {body["operation"]["id"]}
    assert body["operation"]["result"] == {"ports": [p["id"] for p in body["ports"]]}


def test_the_list_is_refused_whole(client: TestClient) -> None:
    assert_problem(client.post("/v1/networks/n/ports", json=[]), 422, "(document)")
    assert_problem(client.post("/v1/networks/n/ports", json=many(1024)), 422, "(document)")
    assert_problem(client.post("/v1/networks/n/ports", json=[port(), 7]), 422, "1")
    bad = many(3)
    bad[2]["host"] = 5
    assert_problem(client.post("/v1/networks/n/ports", json=bad), 422, "2.host")
    down = many(3)
    down[1]["host"] = "gone"
    assert_problem(client.post("/v1/networks/n/ports", json=down), 409, says="item 1")
    assert client.get("/v1/networks/n/ports").json() == []


def test_a_retry_returns_the_same_ports_and_a_different_port_under_an_id_is_refused(
    client: TestClient,
) -> None:
    first = client.post("/v1/networks/n/ports", json=many(2)).json()
    again = client.post("/v1/networks/n/ports", json=many(2))
    assert again.status_code == 202, again.text
    assert again.json()["operation"]["id"] == first["operation"]["id"]  # still running
    assert [p["id"] for p in again.json()["ports"]] == [p["id"] for p in first["ports"]]
    other = many(2)
    other[1]["owner"] = {"name": "someone-else", "uuid": str(uuid.uuid4())}
    assert_problem(client.post("/v1/networks/n/ports", json=other), 409, "1.id")
    assert len(client.get("/v1/networks/n/ports").json()) == 2
