"""macTableManager end to end: API, control worker and host workers in two namespaces."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.cluster import Cluster, wait_for
from tests.kernel import readback

LV, KN = "vnlv0", "vnkn0"


@pytest.fixture
def networks(cluster: Cluster, two_hosts: dict[str, str]) -> dict[str, str]:
    api = cluster.api
    for name, bridge, mtm in (("lv", LV, "libvirt"), ("kn", KN, "kernel")):
        api.post(
            "/v1/networks",
            json={"name": name, "bridge": {"name": bridge, "stp": False, "mac_table_manager": mtm}},
        )
        assert api.post(f"/v1/networks/{name}/start").status_code == 200
        cluster.wait_network(name)
    return two_hosts


def mac(host: int, dom: int, net: int) -> str:
    return f"52:54:00:{host:02x}:{dom:02x}:{net:02x}"


def define_domain(cluster: Cluster, name: str, host: str, macs: list[str]) -> None:
    nets = ["lv", "kn"]
    r = cluster.api.post(
        "/v1/domains",
        json={
            "name": name,
            "host": host,
            "interfaces": [
                {"type": "network", "source": {"network": net}, "mac": m}
                for net, m in zip(nets, macs, strict=False)
            ],
        },
    )
    assert r.status_code == 201, r.text


def start(cluster: Cluster, name: str, action: str = "start") -> dict[str, Any]:
    r = cluster.api.post(f"/v1/domains/{name}/{action}?wait=20")
    assert r.status_code == 200, r.text
    return r.json()


def interfaces(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return cluster.api.get(f"/v1/domains/{name}").json()["interfaces"]


def port_flags(ns: str, bridge: str, tap: str) -> tuple[str, str]:
    return (
        readback.sysfs(ns, f"{bridge}/brif/{tap}/learning"),
        readback.sysfs(ns, f"{bridge}/brif/{tap}/unicast_flood"),
    )


def taps(ns: str) -> set[str]:
    return {
        n
        for n, link in readback.links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "tun"
    }


def send(
    fds: dict[str, int], src: dict[str, Any], dst: str, pool: dict[str, int], expect: set[str]
) -> set[str]:
    """Write a frame from ``src``'s tap to ``dst``; which taps of ``pool`` receive it."""
    token = os.urandom(8)
    os.write(fds[src["actual"]["tap"]], readback.frame(dst, src["mac"], token))
    return readback.received(pool, token, expect)


def test_domains_get_libvirt_ports_with_static_fdb_and_forwarding(
    cluster: Cluster, networks: dict[str, str]
) -> None:
    for h, host in enumerate(networks, start=1):
        for d in (1, 2):
            define_domain(cluster, f"vm{h}{d}", host, [mac(h, d, 1), mac(h, d, 2)])
            op = start(cluster, f"vm{h}{d}")
            assert op["state"] == "succeeded" and op["kind"] == "domain.start", op
    for h, ns in enumerate(networks.values(), start=1):
        statics = readback.static_entries(ns)
        assert sorted(e["mac"] for e in statics) == [mac(h, 1, 1), mac(h, 2, 1)]
        for d in (1, 2):
            domain = cluster.api.get(f"/v1/domains/vm{h}{d}").json()
            assert domain["status"]["state"] == "running"
            lv, kn = domain["interfaces"]
            assert lv["actual"]["bridge"] == LV and lv["actual"]["mac_table_manager"] == "libvirt"
            assert kn["actual"]["bridge"] == KN and kn["actual"]["mac_table_manager"] == "kernel"
            assert lv["actual"]["state"] == kn["actual"]["state"] == "plugged"
            lv_tap, kn_tap = lv["actual"]["tap"], kn["actual"]["tap"]
            assert port_flags(ns, LV, lv_tap) == ("0", "0")
            assert port_flags(ns, KN, kn_tap) == ("1", "1")
            mine = [e for e in statics if e["mac"] == lv["mac"]]
            assert len(mine) == 1 and mine[0]["ifname"] == lv_tap and mine[0]["master"] == LV
            assert not readback.static_entries(ns, kn["mac"])
            link = readback.links(ns)[lv_tap]
            assert link["address"] == "fe" + lv["mac"][2:] and link["master"] == LV
        # frames, no VM needed: open the persistent taps as QEMU would
        ifs = [interfaces(cluster, f"vm{h}{d}") for d in (1, 2)]
        fds = {
            i[n]["actual"]["tap"]: readback.open_tap(ns, i[n]["actual"]["tap"])
            for i in ifs
            for n in (0, 1)
        }
        try:
            a_lv, b_lv = ifs[0][0], ifs[1][0]
            a_kn, b_kn = ifs[0][1], ifs[1][1]
            lv_fds = {k: fds[k] for k in (a_lv["actual"]["tap"], b_lv["actual"]["tap"])}
            kn_fds = {k: fds[k] for k in (a_kn["actual"]["tap"], b_kn["actual"]["tap"])}

            # an opened tap gets its carrier, and its bridge port starts forwarding, through
            # the kernel's linkwatch, which may take up to a second on a loaded machine
            readback.wait_forwarding(ns, LV, list(lv_fds))
            readback.wait_forwarding(ns, KN, list(kn_fds))
            b_tap, b_kn_tap = b_lv["actual"]["tap"], b_kn["actual"]["tap"]
            assert send(fds, a_lv, b_lv["mac"], lv_fds, {b_tap}) == {b_tap}
            assert send(fds, a_lv, "52:54:00:99:99:99", lv_fds, set()) == set()
            assert send(fds, a_kn, "52:54:00:99:99:98", kn_fds, {b_kn_tap}) == {b_kn_tap}
        finally:
            for fd in fds.values():
                os.close(fd)


def test_suspend_resume_stop_and_hot_plug_leave_expected_fdb(
    cluster: Cluster, networks: dict[str, str]
) -> None:
    ns = networks["h1"]
    define_domain(cluster, "vm", "h1", [mac(1, 1, 1), mac(1, 1, 2)])
    start(cluster, "vm")
    assert [e["mac"] for e in readback.static_entries(ns)] == [mac(1, 1, 1)]
    assert start(cluster, "vm", "suspend")["state"] == "succeeded"
    assert readback.static_entries(ns) == []
    assert cluster.api.get("/v1/domains/vm").json()["status"]["state"] == "paused"
    assert len(taps(ns)) == 2  # paused guests keep their taps
    start(cluster, "vm", "resume")
    assert [e["mac"] for e in readback.static_entries(ns)] == [mac(1, 1, 1)]
    # hot-plug a second libvirt interface, then hot-unplug the first
    r = cluster.api.post(
        "/v1/domains/vm/interfaces?wait=20",
        json={"type": "network", "source": {"network": "lv"}, "mac": mac(1, 1, 3)},
    )
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert sorted(e["mac"] for e in readback.static_entries(ns)) == [mac(1, 1, 1), mac(1, 1, 3)]
    r = cluster.api.delete(f"/v1/domains/vm/interfaces/{mac(1, 1, 1)}?wait=20")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert [e["mac"] for e in readback.static_entries(ns)] == [mac(1, 1, 3)]
    assert [i["mac"] for i in interfaces(cluster, "vm")] == [mac(1, 1, 2), mac(1, 1, 3)]
    assert len(taps(ns)) == 2
    start(cluster, "vm", "stop")
    assert readback.static_entries(ns) == [] and taps(ns) == set()
    domain = cluster.api.get("/v1/domains/vm").json()
    assert domain["status"]["state"] == "shut_off"
    assert [i["actual"] for i in domain["interfaces"]] == [None, None]


def test_failed_interface_rolls_the_whole_start_back(
    cluster: Cluster, networks: dict[str, str]
) -> None:
    ns = networks["h2"]
    r = cluster.api.post(
        "/v1/domains",
        json={
            "name": "bad",
            "host": "h2",
            "interfaces": [
                {"type": "network", "source": {"network": "lv"}, "mac": mac(2, 9, 1)},
                {"type": "bridge", "source": {"bridge": "nosuchbr0"}, "mac": mac(2, 9, 2)},
            ],
        },
    )
    assert r.status_code == 201
    op = cluster.api.post("/v1/domains/bad/start?wait=20").json()
    assert op["state"] == "failed" and "nosuchbr0" in op["error"], op
    wait_for(lambda: not taps(ns), what="rolled-back taps removed")
    domain = wait_for(
        lambda: (
            (d := cluster.api.get("/v1/domains/bad").json())
            and all(i["actual"] is None for i in d["interfaces"])
            and d
        ),
        what="ports released",
    )
    assert domain["status"]["state"] == "shut_off" and "nosuchbr0" in domain["status"]["error"]
    assert readback.static_entries(ns) == []
    assert cluster.api.get("/v1/networks/lv/ports").json() == []


def test_network_with_ports_stops_only_with_force(
    cluster: Cluster, networks: dict[str, str]
) -> None:
    ns = networks["h1"]
    r = cluster.api.post(
        "/v1/networks/lv/ports?wait=20",
        json={
            "owner": {"name": "x", "uuid": "0e1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"},
            "host": "h1",
            "mac": mac(1, 7, 1),
            "owner_uid": 4242,
            "vnet_hdr": True,
        },
    )
    assert r.status_code == 201 and r.json()["state"] == "plugged", r.text
    tap = r.json()["actual"]["tap"]
    assert readback.sysfs(ns, f"{tap}/owner") == "4242"
    assert cluster.api.post("/v1/networks/lv/stop").status_code == 409
    assert tap in taps(ns)
    assert cluster.api.post("/v1/networks/lv/stop?force=true").status_code == 200
    wait_for(lambda: tap not in taps(ns) and LV not in readback.links(ns), what="forced stop")
    assert cluster.api.post("/v1/networks/lv/start").status_code == 200
    # the port row goes when the host reports its tap gone, which it does once its whole
    # batch (the unplug, then the bridge) is done: it may come after what the kernel shows
    wait_for(lambda: cluster.api.get("/v1/networks/lv/ports").json() == [], what="port released")


def test_running_domain_is_deleted_only_with_force(
    cluster: Cluster, networks: dict[str, str]
) -> None:
    ns = networks["h2"]
    define_domain(cluster, "gone", "h2", [mac(2, 5, 1), mac(2, 5, 2)])
    start(cluster, "gone")
    assert len(taps(ns)) == 2
    r = cluster.api.delete("/v1/domains/gone")
    assert r.status_code == 409 and "force" in r.json()["detail"]
    r = cluster.api.delete("/v1/domains/gone?force=true&wait=20")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert cluster.api.get("/v1/domains/gone").status_code == 404
    assert taps(ns) == set() and readback.static_entries(ns) == []
    assert cluster.api.get("/v1/networks/lv/ports").json() == []


def test_bridge_mode_network_gets_libvirt_ports_on_the_existing_bridge(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    ns = two_hosts["h1"]
    readback.ip(ns, "link", "add", "hostbr0", "type", "bridge", "stp_state", "0")
    readback.ip(ns, "link", "set", "hostbr0", "up")
    cluster.api.post(
        "/v1/networks",
        json={
            "name": "ext",
            "forward": {"mode": "bridge"},
            "bridge": {"name": "hostbr0", "mac_table_manager": "libvirt"},
        },
    )
    cluster.api.post("/v1/networks/ext/start")
    r = cluster.api.post(
        "/v1/networks/ext/ports?wait=20",
        json={
            "owner": {"name": "vm", "uuid": "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b"},
            "host": "h1",
            "mac": "52:54:00:e0:00:01",
        },
    )
    assert r.status_code == 201 and r.json()["state"] == "plugged", r.text
    assert r.json()["actual"]["bridge"] == "hostbr0"
    tap = r.json()["actual"]["tap"]
    assert port_flags(ns, "hostbr0", tap) == ("0", "0")
    assert [e["ifname"] for e in readback.static_entries(ns, "52:54:00:e0:00:01")] == [tap]
    cluster.api.delete(f"/v1/networks/ext/ports/{r.json()['id']}?wait=20")
    cluster.api.post("/v1/networks/ext/stop")
    wait_for(lambda: tap not in readback.links(ns), what="tap removed")
    assert "hostbr0" in readback.links(ns)  # never created, never deleted by virtnet
