"""Addresses on an overlay network, end to end: three hosts (namespaces with their own host
workers on an underlay bridge), the network's address, dnsmasq and NAT on its gateway host
only; a container guest on another host leases its address from that dnsmasq across the
overlay and pings the gateway. The gateway then moves live to the third host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests import ipguests as guests
from tests import netns
from tests import underlay as ul
from tests.cluster import Cluster, wait_for
from tests.kernel import readback as rb
from tests.overlay.test_overlay_hosts import overlay_hosts

pytestmark = [pytest.mark.kernel]
HOSTS = ("h0", "h1", "h2")
VNI, BRIDGE = 4343, "vbrgw"
DEV = f"vxn{VNI}"
GATEWAY, GUEST_MAC = "10.77.0.1", "52:54:00:77:00:01"
NETWORK = {
    "name": "ov",
    "forward": {"mode": "nat"},
    "bridge": {"name": BRIDGE, "stp": False, "mac_table_manager": "libvirt"},
    "ips": [
        {
            "address": GATEWAY,
            "prefix": 24,
            "dhcp": {"ranges": [{"start": "10.77.0.10", "end": "10.77.0.99"}]},
        }
    ],
    "overlay": {"type": "vxlan", "vni": VNI, "gateway_host": "h0"},
}


@pytest.fixture
def fleet(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Three hosts on an underlay, and a state dir dnsmasq (as 'nobody') can read."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    with contextlib.ExitStack() as stack:
        cluster.configure(state_dir=guests.dnsmasq_state_dir(stack))
        _, namespaces = stack.enter_context(ul.underlay(3, tag="g"))
        hosts = dict(zip(HOSTS, namespaces, strict=True))
        for ns in hosts.values():
            stack.callback(guests.kill_dnsmasqs, ns)
        stack.callback(cluster.close)  # workers stop before their namespaces go
        cluster.start_control()
        for i, (host, ns) in enumerate(hosts.items()):
            cluster.start_host(host, ns, underlay=ul.address(i))
        cluster.wait_hosts_up(*hosts)
        yield hosts


@pytest.fixture
def guest_ns() -> Iterator[str]:
    name = netns.create_named(netns.new_name("c"))
    yield name
    netns.delete(name)


def own_table(ns: str, uuid: str) -> bool:
    return f"virtnet_{uuid.replace('-', '')}" in guests.virtnet_tables(ns)


def has_gateway_part(ns: str, uuid: str) -> bool:
    return (
        guests.addrs(ns, BRIDGE) == [f"{GATEWAY}/24"]
        and len(guests.dnsmasq_pids(ns)) == 1
        and own_table(ns, uuid)
    )


def l2_only(ns: str, uuid: str) -> bool:
    return (
        rb.link(ns, DEV) is not None
        and guests.addrs(ns, BRIDGE) == []
        and guests.dnsmasq_pids(ns) == []
        and not own_table(ns, uuid)
    )


def bridge_mac(ns: str) -> str:
    link = rb.link(ns, BRIDGE)
    assert link is not None, f"no bridge {BRIDGE} in {ns}"
    return str(link["address"])


def pings(ns: str, address: str, timeout: float = 15.0) -> bool:
    return bool(wait_for(lambda: guests.ping(ns, address, wait=1), timeout=timeout, what="ping"))


def test_a_guest_on_another_host_leases_from_the_gateway(
    cluster: Cluster, fleet: dict[str, str], guest_ns: str, tmp_path: Path
) -> None:
    api, ns = cluster.api, fleet
    guests.traversable(tmp_path)
    r = api.post("/v1/networks?start=true", json=NETWORK)
    assert r.status_code == 201, r.text
    uuid, mac = r.json()["uuid"], r.json()["mac"]
    cluster.wait_network("ov", timeout=60)
    wait_for(lambda: has_gateway_part(ns["h0"], uuid), timeout=30, what="h0 the gateway")
    for h in ("h1", "h2"):  # the bridge and VXLAN device, nothing of layer 3
        wait_for(partial(l2_only, ns[h], uuid), timeout=30, what=f"{h} L2 only")
        assert bridge_mac(ns[h]) != mac
    assert bridge_mac(ns["h0"]) == mac
    assert cluster.network("ov")["status"]["gateway"]["host"] == "h0"

    r = api.post(
        "/v1/domains",
        json={
            "name": "c1",
            "type": "lxc",
            "host": "h1",
            "netns": guest_ns,
            "interfaces": [{"type": "network", "source": {"network": "ov"}, "mac": GUEST_MAC}],
        },
    )
    assert r.status_code == 201, r.text
    r = api.post("/v1/domains/c1/start?wait=60")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text

    def in_sync() -> bool:
        hosts = overlay_hosts(cluster)
        return all((hosts[h].get("overlay") or {}).get("in_sync") for h in HOSTS)

    wait_for(in_sync, timeout=60, what=f"overlay in sync\n{cluster.logs()}")
    # the gateway's MAC goes to h0 from the other hosts: on the VXLAN device and the bridge
    for h in ("h1", "h2"):
        entries = [e for e in rb.fdb(ns[h]) if e.get("ifname") == DEV and e["mac"] == mac]
        assert {e.get("dst") for e in entries if "self" in e["flags"]} == {ul.address(0)}
        assert [e["state"] for e in entries if "master" in e] == ["static"], entries

    leased = guests.dhcp(guest_ns, tmp_path)
    assert leased is not None and leased.startswith("10.77.0."), cluster.logs()
    assert pings(guest_ns, GATEWAY)
    leases = wait_for(
        lambda: api.get("/v1/networks/ov/dhcp-leases").json(), timeout=20, what="leases"
    )
    assert [(x["host"], x["mac"], x["ip"]) for x in leases] == [("h0", GUEST_MAC, leased)]

    # the gateway moves live to h2 while h0's worker is dead: h2 answers for the address,
    # and h0, back, keeps L2 only
    cluster.kill("h0")
    moved = {**NETWORK, "overlay": {**NETWORK["overlay"], "gateway_host": "h2"}}  # type: ignore[dict-item]
    r = api.put("/v1/networks/ov?live=true", json=moved)
    assert r.status_code == 200, r.text
    wait_for(lambda: has_gateway_part(ns["h2"], uuid), timeout=30, what="h2 the gateway")
    cluster.start_host("h0", ns["h0"], underlay=ul.address(0))
    wait_for(lambda: l2_only(ns["h0"], uuid), timeout=60, what=f"h0 L2 only\n{cluster.logs()}")
    assert bridge_mac(ns["h2"]) == mac
    assert bridge_mac(ns["h0"]) != mac
    wait_for(in_sync, timeout=60, what=f"overlay in sync\n{cluster.logs()}")
    assert guests.dhcp(guest_ns, tmp_path) is not None, cluster.logs()
    assert pings(guest_ns, GATEWAY)

    # after network stop nothing of it remains on any host
    assert api.post("/v1/networks/ov/stop?force=true").status_code in (200, 204)

    def clean() -> bool:
        return all(
            rb.link(ns[h], BRIDGE) is None
            and rb.link(ns[h], DEV) is None
            and guests.dnsmasq_pids(ns[h]) == []
            and not own_table(ns[h], uuid)
            and not any("dst" in e for e in rb.fdb(ns[h]))
            for h in HOSTS
        )

    wait_for(clean, timeout=30, what="network removed on every host")
