"""Retrying a bulk port request (issue 12): real workers in namespaces, taps read back.

What the API promises (app/services/bulk_ports.py): items that name their ``id`` make the
request safe to send again, as a Neutron or Incus client does after a timeout. An item whose
port exists is that port, returned as it is now; only the others are created; the kernel
ends with one tap per port. Items without an id are new ports each time, so a client that
retries must name ids; with the same MACs such a retry is refused whole (409) instead of
doubling the ports.
"""

from __future__ import annotations

from typing import Any

from tests.cluster import Cluster
from tests.integration.test_bulk_ports import items, net, on_bridge
from tests.kernel import readback

__all__ = ["net"]  # the fixture, shared with test_bulk_ports


def post(cluster: Cluster, body: list[dict[str, Any]]) -> dict[str, Any]:
    r = cluster.api.post("/v1/networks/bulk/ports?wait=60", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_a_retry_after_a_partial_host_failure_changes_nothing(
    cluster: Cluster, net: dict[str, str]
) -> None:
    """The retry answers with the same ports and a finished, failed operation naming the
    port that failed; it plugs nothing twice and does not try the failed port again (a new
    request does that)."""
    readback.ip(net["h2"], "link", "add", "vnet1", "type", "bridge")  # in the way of a tap
    wanted = items("h1", 2) + items("h2", 3, start=2)
    first = post(cluster, wanted)
    assert first["operation"]["state"] == "failed"
    failed = [p["id"] for p in first["ports"] if p["state"] == "failed"]
    assert len(failed) == 1
    kernel = (set(on_bridge(net["h1"])), set(on_bridge(net["h2"])))
    again = post(cluster, wanted)
    assert [p["id"] for p in again["ports"]] == [w["id"] for w in wanted]
    assert [p["state"] for p in again["ports"]] == [p["state"] for p in first["ports"]]
    assert again["operation"]["state"] == "failed"
    assert again["operation"]["id"] != first["operation"]["id"]  # nothing pending: a new one
    tap = next(p["actual"]["tap"] for p in again["ports"] if p["id"] in failed)
    assert tap in again["operation"]["error"]
    assert len(cluster.api.get("/v1/networks/bulk/ports").json()) == 5
    assert (set(on_bridge(net["h1"])), set(on_bridge(net["h2"]))) == kernel


def test_a_retry_that_adds_items_creates_only_the_new_ones(
    cluster: Cluster, net: dict[str, str]
) -> None:
    first = post(cluster, items("h1", 3))
    assert first["operation"]["state"] == "succeeded"
    taps = {p["id"]: p["actual"]["tap"] for p in first["ports"]}
    longer = items("h1", 5)  # the same three, then two more
    again = post(cluster, longer)
    assert again["operation"]["state"] == "succeeded"
    assert [p["id"] for p in again["ports"]] == [w["id"] for w in longer]
    assert {p["state"] for p in again["ports"]} == {"plugged"}
    for port in again["ports"][:3]:
        assert port["actual"]["tap"] == taps[port["id"]]  # the same ports, not new ones
    assert again["operation"]["result"]["ports"] == [w["id"] for w in longer]
    assert len(cluster.api.get("/v1/networks/bulk/ports").json()) == 5
    assert set(on_bridge(net["h1"])) == {p["actual"]["tap"] for p in again["ports"]}


def test_a_retry_without_ids_is_refused_whole_and_doubles_nothing(
    cluster: Cluster, net: dict[str, str]
) -> None:
    wanted = [{k: v for k, v in item.items() if k != "id"} for item in items("h1", 3)]
    first = post(cluster, wanted)
    assert first["operation"]["state"] == "succeeded"
    again = cluster.api.post("/v1/networks/bulk/ports?wait=60", json=wanted)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "item 0" in again.json()["detail"]
    assert len(cluster.api.get("/v1/networks/bulk/ports").json()) == 3
    assert len(on_bridge(net["h1"])) == 3
