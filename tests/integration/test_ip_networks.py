"""libvirt's default network and its relatives, end to end with real dnsmasq and nftables.

One host worker in a namespace; guests are namespaces on veth ports of the bridge; the
"upstream" is a namespace behind a veth from the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import ipguests as guests
from tests import netns
from tests.cluster import Cluster, wait_for
from tests.kernel import readback

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "libvirt-9.0.0"
#: libvirt's src/network/default.xml, which its firewall tests use as nat-default.xml
DEFAULT_XML = CORPUS / "networkfirewall" / "nat-default.xml"
UP_HOST, UP_ADDR = "198.51.100.1", "198.51.100.2"


@pytest.fixture
def site(cluster: Cluster, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Host h1 with its worker, two guests and an upstream, all namespaces."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    with contextlib.ExitStack() as stack:
        cluster.configure(state_dir=guests.dnsmasq_state_dir(stack))
        names = {k: stack.enter_context(netns.namespace(k)) for k in ("h1", "g1", "g2", "up")}
        stack.callback(guests.kill_dnsmasqs, names["h1"])
        stack.callback(cluster.close)
        guests.add_upstream(names["h1"], names["up"], f"{UP_HOST}/24", f"{UP_ADDR}/24")
        cluster.start_control()
        cluster.start_host("h1", names["h1"])
        cluster.wait_hosts_up("h1")
        yield names


def test_default_network_posted_as_is(
    cluster: Cluster, site: dict[str, str], tmp_path: Path
) -> None:
    api, h1, g1 = cluster.api, site["h1"], site["g1"]
    r = api.post(
        "/v1/networks?start=true",
        content=DEFAULT_XML.read_bytes(),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code in (200, 201), r.text
    cluster.wait_network("default")
    assert guests.addrs(h1, "virbr0") == ["192.168.122.1/24"]
    pid = guests.wait_one_dnsmasq(h1)

    guests.attach_guest(h1, "virbr0", g1, "vng1", "52:54:00:00:00:11")
    leased = guests.dhcp(g1, tmp_path, hostname="guest1")
    assert leased is not None, cluster.logs()
    octet = int(leased.rsplit(".", 1)[1])
    assert leased.startswith("192.168.122.") and 2 <= octet <= 254
    # DNS through the bridge address: the guest's own name, learnt from its DHCP request
    assert guests.resolve(g1, "guest1", "192.168.122.1") == leased

    # NAT: the upstream sees the host's address, not the guest's
    with guests.listener(site["up"], UP_ADDR, 8080) as server:
        assert guests.peer_seen(server, g1, UP_ADDR, 8080) == UP_HOST
    leases = wait_for(
        lambda: api.get("/v1/networks/default/dhcp-leases").json(), timeout=20, what="leases"
    )
    assert [(x["host"], x["mac"], x["ip"], x["hostname"]) for x in leases] == [
        ("h1", "52:54:00:00:00:11", leased, "guest1")
    ]
    assert leases[0]["expiry"] > "2026"

    # net-update, live: a fixed address for the guest and a DNS name, same dnsmasq process
    for section, xml in (
        ("ip-dhcp-host", "<host mac='52:54:00:00:00:11' name='guest1' ip='192.168.122.50'/>"),
        ("dns-host", "<host ip='192.168.122.9'><hostname>db</hostname></host>"),
    ):
        r = api.post(
            "/v1/networks/default/update",
            json={"command": "add-last", "section": section, "xml": xml},
        )
        assert r.status_code == 200, r.text
    uuid = api.get("/v1/networks/default").json()["uuid"]
    addn = cluster.settings.state_dir / "hosts" / "h1" / "dnsmasq" / uuid / "addn-hosts"
    wait_for(lambda: addn.exists() and "db" in addn.read_text(), timeout=20, what="addn-hosts")
    assert wait_for(lambda: guests.resolve(g1, "db", "192.168.122.1"), timeout=15) == (
        "192.168.122.9"
    )
    assert guests.dhcp(g1, tmp_path, hostname="guest1") == "192.168.122.50"
    assert guests.dnsmasq_pids(h1) == [pid]

    tables = guests.virtnet_tables(h1)
    assert len(tables) == 1 and tables[0].startswith("virtnet_")
    assert netns.run(h1, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    # faults: a killed dnsmasq is back within 2 s; a restarted worker adopts it
    os.kill(pid, signal.SIGKILL)
    pid = guests.wait_one_dnsmasq(h1, timeout=2.0, other_than=pid)
    cluster.kill("h1")
    cluster.start_host("h1", h1)
    cluster.wait_hosts_up("h1")
    cluster.wait_network("default")
    guests.settle(1.0)  # the supervisor has run at least once since
    assert guests.dnsmasq_pids(h1) == [pid]

    # stop: no dnsmasq, no bridge (and so no addresses), no virtnet rules
    r = api.post("/v1/networks/default/stop?force=true")
    assert r.status_code == 204, r.text  # a transient network is gone once stopped
    wait_for(lambda: not guests.dnsmasq_pids(h1), timeout=20, what="dnsmasq stopped")
    wait_for(lambda: not guests.virtnet_tables(h1), timeout=20, what="rules removed")
    wait_for(lambda: "virbr0" not in readback.links(h1), timeout=20, what="bridge removed")
    assert all(not guests.addrs(h1, dev) for dev in readback.links(h1) if dev.startswith("virbr"))
    assert not list((cluster.settings.state_dir / "hosts" / "h1" / "dnsmasq").glob("*"))


ROUTED = {
    "name": "routed",
    "forward": {"mode": "route"},
    "bridge": {"name": "vnrt0", "stp": False},
    "ips": [
        {
            "address": "10.10.0.1",
            "prefix": 24,
            "dhcp": {
                "ranges": [{"start": "10.10.0.100", "end": "10.10.0.200"}],
                "hosts": [{"mac": "52:54:00:00:00:21", "name": "fixed", "ip": "10.10.0.21"}],
            },
        },
        {"address": "fd00:10::1", "prefix": 64},
    ],
}
ISOLATED = {
    "name": "isolated",
    "bridge": {"name": "vniso0", "stp": False},
    "ips": [
        {
            "address": "10.20.0.1",
            "prefix": 24,
            "dhcp": {"ranges": [{"start": "10.20.0.100", "end": "10.20.0.200"}]},
        }
    ],
}
OPEN = {
    "name": "open",
    "forward": {"mode": "open"},
    "bridge": {"name": "vnopen0", "stp": False},
    "ips": [{"address": "10.30.0.1", "prefix": 24}],
}


def test_route_isolated_open_and_ipv6(
    cluster: Cluster, site: dict[str, str], tmp_path: Path
) -> None:
    api, h1, g1, g2, up = cluster.api, site["h1"], site["g1"], site["g2"], site["up"]
    for doc in (ROUTED, ISOLATED, OPEN):
        r = api.post("/v1/networks?start=true", json=doc)
        assert r.status_code in (200, 201), r.text
    for name in ("routed", "isolated", "open"):
        states = {h["state"] for h in cluster.wait_network(name)["status"]["hosts"]}
        assert states == {"active"}, cluster.network(name)
    assert sorted(guests.addrs(h1, "vnrt0")) == ["10.10.0.1/24", "fd00:10::1/64"]
    assert len(guests.dnsmasq_pids(h1)) == 3
    # 'open' has no rules at all; the two others one table each
    assert len(guests.virtnet_tables(h1)) == 2

    # route: a <host> entry gives the guest its fixed address; the upstream sees it unchanged
    guests.attach_guest(h1, "vnrt0", g1, "vng1", "52:54:00:00:00:21")
    assert guests.dhcp(g1, tmp_path) == "10.10.0.21", cluster.logs()
    guests.ip(up, "route", "add", "10.10.0.0/24", "via", UP_HOST)
    with guests.listener(up, UP_ADDR, 8081) as server:
        assert guests.peer_seen(server, g1, UP_ADDR, 8081) == "10.10.0.21"
    # IPv6: an address from dnsmasq's router advertisements, and the bridge answers a ping
    # (from it once it is past duplicate address detection: a tentative one cannot send)
    v6 = wait_for(
        lambda: [a for a in guests.addrs(g1, "eth0", settled=True) if a.startswith("fd00:10:")],
        timeout=20,
        what="an IPv6 address from RA",
    )
    assert v6[0].endswith("/64")
    assert guests.ping(g1, "fd00:10::1")

    # isolated: the guest reaches the bridge address, not the upstream (even with a route)
    guests.attach_guest(h1, "vniso0", g2, "vng2", "52:54:00:00:00:22")
    leased = guests.dhcp(g2, tmp_path)
    assert leased is not None and leased.startswith("10.20.0.")
    assert guests.ping(g2, "10.20.0.1")
    guests.ip(g2, "route", "replace", "default", "via", "10.20.0.1")
    with guests.listener(up, UP_ADDR, 8082) as server:
        assert guests.peer_seen(server, g2, UP_ADDR, 8082) is None

    for name in ("routed", "isolated", "open"):
        assert api.post(f"/v1/networks/{name}/stop?force=true").status_code == 204
    wait_for(lambda: not guests.dnsmasq_pids(h1), timeout=20, what="dnsmasq stopped")
    wait_for(lambda: not guests.virtnet_tables(h1), timeout=20, what="rules removed")
