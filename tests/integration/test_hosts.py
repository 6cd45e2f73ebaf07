"""Host workers realise networks in namespaces; hosts come and go; restarts converge."""

from __future__ import annotations

import signal
from typing import Any

from tests import netns
from tests.cluster import Cluster, wait_for
from tests.kernel import readback


def bridges(ns: str) -> dict[str, dict[str, Any]]:
    return {
        name: link
        for name, link in readback.links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "bridge"
    }


def test_hosts_register_with_capabilities(cluster: Cluster, two_hosts: dict[str, str]) -> None:
    listed = cluster.api.get("/v1/hosts").json()
    assert [h["name"] for h in listed] == ["h1", "h2"]
    for host in listed:
        assert host["state"] == "up" and host["kernel"]
        assert host["net_admin"] is True and host["tun"] is True
        assert host["vlan_filtering"] is False  # this kernel has no CONFIG_BRIDGE_VLAN_FILTERING
        assert host["vlan_8021q"] is False  # nor CONFIG_VLAN_8021Q: probed by each host worker
    assert cluster.api.get("/v1/hosts/nope").status_code == 404


def test_start_realises_bridges_on_every_host_and_stop_removes_them(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api = cluster.api
    api.post(
        "/v1/networks",
        json={
            "name": "lv",
            "mac": "52:54:00:0a:0b:01",
            "mtu": 1400,
            "bridge": {"name": "vnlv0", "stp": False, "delay": 0, "mac_table_manager": "libvirt"},
        },
    )
    api.post(
        "/v1/networks",
        json={
            "name": "kn",
            "mac": "52:54:00:0a:0b:02",
            "bridge": {"name": "vnkn0", "stp": True, "delay": 5},
        },
    )
    assert api.post("/v1/networks/lv/start").status_code == 200
    assert api.post("/v1/networks/kn/start").status_code == 200
    lv = cluster.wait_network("lv")
    kn = cluster.wait_network("kn")
    assert {h["host"]: h["state"] for h in lv["status"]["hosts"]} == {
        "h1": "degraded",
        "h2": "degraded",
    }
    assert all("vlan filtering" in h["error"].lower() for h in lv["status"]["hosts"])
    assert {h["host"]: h["state"] for h in kn["status"]["hosts"]} == {
        "h1": "active",
        "h2": "active",
    }
    for ns in two_hosts.values():
        found = bridges(ns)
        lvb, knb = found["vnlv0"], found["vnkn0"]
        assert lvb["address"] == "52:54:00:0a:0b:01" and lvb["mtu"] == 1400
        assert "UP" in lvb["flags"] and "UP" in knb["flags"]
        assert lvb["linkinfo"]["info_data"]["stp_state"] == 0
        assert knb["linkinfo"]["info_data"]["stp_state"] == 1
        assert knb["address"] == "52:54:00:0a:0b:02"
        # the kernel keeps the forward delay in centiseconds; STP clamps it to at least 2 s
        assert knb["linkinfo"]["info_data"]["forward_delay"] == 500
    api.post("/v1/networks/lv/stop")
    api.post("/v1/networks/kn/stop")
    for ns in two_hosts.values():
        wait_for(
            lambda ns=ns: not ({"vnlv0", "vnkn0"} & set(readback.links(ns))),
            what="bridges removed",
        )
    assert cluster.network("lv")["status"]["hosts"] == []


def test_bridge_mode_needs_the_existing_bridge_and_never_creates_it(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api = cluster.api
    netns.run(two_hosts["h1"], "ip", "link", "add", "hostbr0", "type", "bridge")
    api.post(
        "/v1/networks",
        json={"name": "ext", "forward": {"mode": "bridge"}, "bridge": {"name": "hostbr0"}},
    )
    api.post("/v1/networks/ext/start")
    ext = cluster.wait_network("ext")
    by_host = {h["host"]: h for h in ext["status"]["hosts"]}
    assert by_host["h1"]["state"] == "active"
    assert by_host["h2"]["state"] == "failed" and "hostbr0" in by_host["h2"]["error"]
    assert "hostbr0" not in readback.links(two_hosts["h2"])
    api.post("/v1/networks/ext/stop")
    wait_for(lambda: cluster.network("ext")["status"]["state"] == "inactive")
    # virtnet never deletes a bridge it did not create
    assert "hostbr0" in readback.links(two_hosts["h1"])


def test_killed_worker_goes_down_and_a_restarted_one_repairs_its_host(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api = cluster.api
    api.post("/v1/networks", json={"name": "k", "bridge": {"name": "vnk0", "stp": False}})
    api.post("/v1/networks/k/start")
    cluster.wait_network("k")
    ns = two_hosts["h1"]
    cluster.kill("h1", signal.SIGKILL)
    down_after = cluster.settings.heartbeat_seconds * cluster.settings.missed_heartbeats
    wait_for(lambda: cluster.host_state("h1") == "down", timeout=down_after + 3, what="h1 down")
    assert cluster.host_state("h2") == "up"
    # while h1 is away someone deletes its bridge and a network is started
    netns.run(ns, "ip", "link", "del", "vnk0")
    api.post("/v1/networks", json={"name": "later", "bridge": {"name": "vnlater0"}})
    api.post("/v1/networks/later/start")
    cluster.start_host("h1", ns)
    cluster.wait_hosts_up("h1")
    wait_for(
        lambda: {"vnk0", "vnlater0"} <= set(bridges(ns)),
        what=f"h1 reconciled\n{cluster.logs()}",
    )
    later = cluster.wait_network("later")
    assert {h["host"] for h in later["status"]["hosts"]} == {"h1", "h2"}


def test_restarted_worker_removes_bridges_no_longer_wanted(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api = cluster.api
    api.post("/v1/networks", json={"name": "s", "bridge": {"name": "vns0", "stp": False}})
    api.post("/v1/networks/s/start")
    cluster.wait_network("s")
    ns = two_hosts["h2"]
    netns.run(ns, "ip", "link", "add", "foreign0", "type", "bridge")
    cluster.kill("h2", signal.SIGKILL)
    api.post("/v1/networks/s/stop?force=true")
    cluster.start_host("h2", ns)
    cluster.wait_hosts_up("h2")
    wait_for(lambda: "vns0" not in readback.links(ns), what="stale bridge removed")
    assert "foreign0" in readback.links(ns)


def test_autostart_networks_start_with_the_control_worker(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api = cluster.api
    api.post(
        "/v1/networks",
        json={"name": "auto", "autostart": True, "bridge": {"name": "vnauto0", "stp": False}},
    )
    assert cluster.network("auto")["status"]["state"] == "inactive"
    cluster.kill("control", signal.SIGTERM)
    cluster.start_control()
    cluster.wait_network("auto")
    for ns in two_hosts.values():
        wait_for(lambda ns=ns: "vnauto0" in bridges(ns), what="autostarted bridge")
