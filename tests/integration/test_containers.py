"""Containers that talk: lxc domains get veth pairs, their guests ping each other through
virtnet's bridge, and packet captures in the guests' namespaces show what the FDB allows."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import netns
from tests.cluster import Cluster, wait_for
from tests.integration.conftest import GUEST_LV as LV
from tests.kernel import readback

pytestmark = pytest.mark.integration
ETH_P_ALL = 0x0003


@pytest.fixture
def guest_names() -> Iterator[list[str]]:
    """Namespace names for the guests; whatever is left of them goes afterwards."""
    names = [netns.new_name("c") for _ in range(3)]
    yield names
    for name in names:
        netns.delete(name)


def mac(dom: int, net: int) -> str:
    return f"52:54:00:c0:{dom:02x}:{net:02x}"


def act(cluster: Cluster, path: str, **kw: Any) -> dict[str, Any]:
    r = cluster.api.post(f"/v1/domains/{path}?wait=30", **kw)
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    return r.json()


def sh(ns: str, *argv: str, check: bool = True) -> str:
    return netns.run(ns, *argv, check=check).stdout


def pings(ns: str, address: str, *opts: str, count: int = 1, timeout: float = 8.0) -> bool:
    """True once ``ns`` gets an echo reply from ``address`` (retried until ``timeout``);
    busybox's ping, from the busybox-static package the VM test needs anyway."""
    argv = ["busybox", "ping", *opts, "-c", str(count), "-W", "1", address]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if netns.run(ns, *argv, check=False).returncode == 0:
            return True
    return False


class Capture:
    """A packet socket on one guest interface (what tcpdump uses), opened in its namespace."""

    def __init__(self, ns: str, ifname: str) -> None:
        def open_socket() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            s.setblocking(False)
            return s

        self.sock = netns.in_namespace(ns, open_socket)

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def close(self) -> None:
        self.sock.close()


def delivered(sender: Capture, src: str, dst: str, pool: dict[str, Capture]) -> set[str]:
    """Send a frame from ``src`` to ``dst``; the guests of ``pool`` whose capture saw it."""
    token = os.urandom(8)
    sender.send(readback.frame(dst, src, token))
    fds = {name: c.sock.fileno() for name, c in pool.items()}
    got: set[str] = set()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        import select

        ready, _, _ = select.select(list(fds.values()), [], [], 0.05)
        for name, fd in fds.items():
            if fd in ready:
                with contextlib.suppress(BlockingIOError):
                    data = os.read(fd, 65536)
                    if data[12:14] == b"\x88\xb5" and data[14:].startswith(token):
                        got.add(name)
    return got


def test_containers_talk_through_veth_pairs(
    cluster: Cluster, guest_host: str, guest_names: list[str]
) -> None:
    api, host = cluster.api, guest_host
    # c1's namespace is named by the domain (virtnet creates it); c2's is given and exists
    c1, c2_ns = guest_names[0], guest_names[1]
    netns.create_named(c2_ns)
    for name, extra, d in ((c1, {}, 1), ("c2", {"netns": c2_ns}, 2)):
        r = api.post(
            "/v1/domains",
            json={
                "name": name,
                "type": "lxc",
                "host": "h1",
                "interfaces": [{"type": "network", "source": {"network": "lv"}, "mac": mac(d, 1)}],
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        act(cluster, f"{name}/start")
    ns1, ns2 = c1, c2_ns
    for ns, d in ((ns1, 1), (ns2, 2)):
        eth0 = readback.links(ns)["eth0"]
        assert eth0["address"] == mac(d, 1) and "UP" in eth0["flags"]
    view = api.get("/v1/domains/c2").json()["interfaces"][0]["actual"]
    assert view["device"] == "veth" and view["netns"] == c2_ns
    assert view["guest_ifname"] == "eth0" and view["bridge"] == LV
    host_end = readback.links(host)[view["tap"]]
    assert host_end["master"] == LV and host_end["address"] == "fe" + mac(2, 1)[2:]
    assert [e["ifname"] for e in readback.static_entries(host, mac(2, 1))] == [view["tap"]]

    sh(ns1, "ip", "addr", "add", "10.77.0.1/24", "dev", "eth0")
    sh(ns2, "ip", "addr", "add", "10.77.0.2/24", "dev", "eth0")
    assert pings(ns1, "10.77.0.2", count=2)
    lladdr2 = "fe80::5054:ff:fec0:201"  # EUI-64 of c2's MAC
    assert pings(ns1, lladdr2, "-6", "-I", "eth0")

    caps = {"c1": Capture(ns1, "eth0"), "c2": Capture(ns2, "eth0")}
    try:
        assert delivered(caps["c1"], mac(1, 1), mac(2, 1), caps) == {"c2"}
        # libvirt mode: a MAC the bridge does not know reaches no guest
        assert delivered(caps["c1"], mac(1, 1), "52:54:00:99:99:99", caps) == set()
        act(cluster, "c2/suspend")
        assert readback.static_entries(host, mac(2, 1)) == []
        assert delivered(caps["c1"], mac(1, 1), mac(2, 1), caps) == set()
        assert not pings(ns1, "10.77.0.2", timeout=1.5)
        act(cluster, "c2/resume")
        assert delivered(caps["c1"], mac(1, 1), mac(2, 1), caps) == {"c2"}
        assert pings(ns1, "10.77.0.2")
    finally:
        for c in caps.values():
            c.close()

    # hot-plug: an interface on the kernel-mode network is eth1 in each guest
    for name, d in ((c1, 1), ("c2", 2)):
        body = {"type": "network", "source": {"network": "kn"}, "mac": mac(d, 2)}
        act(cluster, f"{name}/interfaces", json=body)
    assert readback.links(ns1)["eth1"]["address"] == mac(1, 2)
    assert readback.links(ns2)["eth1"]["address"] == mac(2, 2)
    caps = {"c1": Capture(ns1, "eth1"), "c2": Capture(ns2, "eth1")}
    try:
        # kernel mode: an unknown destination is flooded to every guest
        assert delivered(caps["c1"], mac(1, 2), "52:54:00:99:99:98", caps) == {"c2"}
    finally:
        for c in caps.values():
            c.close()

    # hot-unplug, then stop: virtnet's namespace goes, the given one stays, empty
    r = api.delete(f"/v1/domains/c2/interfaces/{mac(2, 2)}?wait=30")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert "eth1" not in readback.links(ns2)
    act(cluster, f"{c1}/stop")
    act(cluster, "c2/stop")
    assert not os.path.exists(f"/var/run/netns/{ns1}")
    assert sorted(readback.links(ns2)) == ["lo"]
    leftovers = [n for n, link in readback.links(host).items() if n.startswith("vnet")]
    assert leftovers == []
    wait_for(lambda: api.get("/v1/domains/c2").json()["status"]["state"] == "shut_off")
