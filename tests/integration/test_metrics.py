"""/metrics after known traffic: every counter moved by exactly that much."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import Cluster, wait_for

PLUG = {"host": "h1", "action": "plug"}


def scrape(cluster: Cluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = cluster.api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_move_with_traffic(cluster: Cluster, two_hosts: dict[str, str]) -> None:
    api = cluster.api
    api.post(
        "/v1/networks",
        json={
            "name": "m",
            "bridge": {"name": "vnm0", "stp": False, "mac_table_manager": "libvirt"},
        },
    )
    api.post("/v1/networks/m/start")
    cluster.wait_network("m")
    before = scrape(cluster)
    for _ in range(5):
        assert api.get("/v1/networks").status_code == 200
    for _ in range(3):
        assert api.get("/v1/networks/nope").status_code == 404
    owner = {"name": "vm", "uuid": "3c9e2b1a-0f4d-4e8a-9b7c-6d5e4f3a2b1c"}
    for i in range(2):
        r = api.post(
            "/v1/networks/m/ports?wait=20",
            json={"owner": owner, "host": "h1", "mac": f"52:54:00:4d:00:0{i}"},
        )
        assert r.json()["state"] == "plugged"
    # the plug times are counted after the report's commit, which the ?wait returned on
    wait_for(
        lambda: delta(before, scrape(cluster), "virtnet_host_port_seconds_count", **PLUG) == 2,
        what="the plug times counted",
    )
    after = scrape(cluster)
    get_list = {"method": "GET", "route": "/v1/networks"}
    assert delta(before, after, "virtnet_http_requests_total", status="200", **get_list) == 5
    assert (
        delta(
            before,
            after,
            "virtnet_http_requests_total",
            method="GET",
            route="/v1/networks/{name}",
            status="404",
        )
        == 3
    )
    assert delta(before, after, "virtnet_http_request_seconds_count", **get_list) == 5
    assert (
        delta(before, after, "virtnet_operations_total", kind="port.plug", state="succeeded") == 2
    )
    assert after[("virtnet_ports", (("host", "h1"), ("network", "m"), ("state", "plugged")))] == 2
    assert delta(before, after, "virtnet_host_port_seconds_count", **PLUG) == 2
    assert (
        after[
            (
                "virtnet_host_port_seconds_bucket",
                (("action", "plug"), ("host", "h1"), ("le", "+Inf")),
            )
        ]
        >= 2
    )
    assert after[("virtnet_hosts", (("state", "up"),))] == 2
    assert after[("virtnet_hosts", (("state", "down"),))] == 0
    assert ("virtnet_queue_depth", (("queue", "host.h1"),)) in after
