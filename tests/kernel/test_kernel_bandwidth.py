"""Bandwidth as libvirt sets it: qdiscs and classes read back with `tc -json`, and rates
measured between guest namespaces (veths on the bridge) over 3 s."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import netns
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortSpec
from workers.kernel.qos import ifb_name
from workers.kernel.specs import Bandwidth, Floor, Rate

pytestmark = [pytest.mark.kernel, requires_root]
BRIDGE = "virbr1"


def tc(ns: str, *argv: str) -> list[dict]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "-json", *argv],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out) if out.strip() else []


UNITS = {"bit": 1, "Kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9}


def htb(ns: str, dev: str) -> dict[str, tuple[str, int, int]]:
    """classid -> (parent, rate, ceil) in bytes per second. iproute2 6.1 prints HTB classes
    as text even with -json, so they are read from `tc class show`."""

    def rate(text: str) -> int:
        number = text.rstrip("KMGbit")
        return int(float(number) * UNITS[text[len(number) :]]) // 8

    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "class", "show", "dev", dev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    classes = {}
    for line in out.splitlines():
        words = line.split()
        if words[:2] != ["class", "htb"]:
            continue
        parent = "root" if words[3] == "root" else words[4]
        classes[words[2]] = (
            parent,
            rate(words[words.index("rate") + 1]),
            rate(words[words.index("ceil") + 1]),
        )
    return classes


def kinds(ns: str, dev: str) -> dict[str, str]:
    return {q["handle"]: q["kind"] for q in tc(ns, "qdisc", "show", "dev", dev)}


def test_port_qdiscs_follow_the_desired_state(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec(BRIDGE, "net-1", stp=False))
    limits = Bandwidth(Rate(1000, 2000, 64), Rate(500, 800))
    spec = PortSpec("vnA", BRIDGE, "52:54:00:00:02:0a", "p-a", bandwidth=limits, qos=True)
    assert host.plug_many([spec]) == [None]
    mode = host.outbound_modes["vnA"]
    assert kinds(ns, "vnA")["1:"] == "htb" and "ffff:" in kinds(ns, "vnA")
    # libvirt's non-hierarchical set: 1:1 at peak, 1:2 at average borrowing up to peak
    assert htb(ns, "vnA") == {
        "1:1": ("root", 2_000_000, 2_000_000),
        "1:2": ("1:1", 1_000_000, 2_000_000),
    }
    if mode == "ifb":  # no act_police in this kernel: outbound is shaped on an IFB device
        assert htb(ns, ifb_name("p-a")) == {"1:1": ("root", 500_000, 800_000)}
        redirect = tc(ns, "filter", "show", "dev", "vnA", "ingress")
        assert "mirred" in json.dumps(redirect) and ifb_name("p-a") in json.dumps(redirect)
    else:
        assert mode == "police"

    # reconcile repairs a stale class and a missing ingress
    rb.ip(ns, "link", "set", "vnA", "up")
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "tc",
            "class",
            "change",
            "dev",
            "vnA",
            "classid",
            "1:2",
            "htb",
            "rate",
            "1kbit",
        ],
        check=True,
    )
    subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "vnA", "ingress"], check=True
    )
    assert host.plug_many([spec], check_qos=True) == [None]
    assert htb(ns, "vnA")["1:2"] == ("1:1", 1_000_000, 2_000_000)
    assert "ffff:" in kinds(ns, "vnA")

    # a live change without replugging: same tap (same index), new limits
    index = rb.link(ns, "vnA")["ifindex"]
    lower = PortSpec(
        "vnA", BRIDGE, "52:54:00:00:02:0a", "p-a", qos=True, bandwidth=Bandwidth(Rate(300))
    )
    assert host.plug_many([lower]) == [None]
    assert rb.link(ns, "vnA")["ifindex"] == index
    assert htb(ns, "vnA")["1:2"] == ("1:1", 300_000, 300_000)
    assert "ffff:" not in kinds(ns, "vnA") and rb.link(ns, ifb_name("p-a")) is None

    # everything goes with the port
    host.plug_many([spec])
    assert rb.link(ns, ifb_name("p-a")) is not None or mode == "police"
    assert host.unplug_many([spec]) == [True]
    assert rb.link(ns, ifb_name("p-a")) is None


def test_floor_classes_on_the_bridge(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec(BRIDGE, "net-1", stp=False))
    host.ensure_bridge_bandwidth(BRIDGE, "net-1", Bandwidth(Rate(1000, 1500)))
    assert htb(ns, BRIDGE) == {
        "1:1": ("root", 1_000_000, 1_500_000),
        "1:2": ("1:1", 1_000_000, 1_500_000),
    }
    floored = PortSpec(
        "vnA",
        BRIDGE,
        "52:54:00:00:03:0a",
        "p-a",
        class_id=3,
        bandwidth=Bandwidth(Rate(floor=600)),
        floor=Floor(3, "52:54:00:00:03:0a", 600),
    )
    assert host.plug_many([floored]) == [None]
    # libvirt: class 1:3 rate=floor ceil=network peak, and 1:2 gets peak minus the floors
    assert htb(ns, BRIDGE)["1:3"] == ("1:1", 600_000, 1_500_000)
    assert htb(ns, BRIDGE)["1:2"] == ("1:1", 900_000, 1_500_000)
    filters = json.dumps(tc(ns, "filter", "show", "dev", BRIDGE))
    assert "800::803" in filters and "1:3" in filters
    # a second realisation of the network keeps the floors
    host.ensure_bridge_bandwidth(BRIDGE, "net-1", Bandwidth(Rate(1000, 1500)))
    assert "1:3" in htb(ns, BRIDGE)
    # a floor removed live takes its class away, the shared class gets it back
    gone = PortSpec("vnA", BRIDGE, "52:54:00:00:03:0a", "p-a", class_id=3, qos=True)
    assert host.plug_many([gone]) == [None]
    assert set(htb(ns, BRIDGE)) == {"1:1", "1:2"}
    assert host.plug_many([floored]) == [None]
    assert host.unplug_many([floored]) == [True]
    assert set(htb(ns, BRIDGE)) == {"1:1", "1:2"}


# -- measured rates


@pytest.fixture
def lan(host: HostNet, ns: str) -> Iterator[dict[str, str]]:
    """Guest namespaces g1..g4, each a veth on the bridge; the host has 10.77.0.1."""
    host.ensure_bridge(BridgeSpec(BRIDGE, "net-1", stp=False, delay=0))
    rb.ip(ns, "addr", "add", "10.77.0.1/24", "dev", BRIDGE)
    rb.ip(ns, "link", "set", BRIDGE, "up")
    guests: dict[str, str] = {}
    try:
        for i in range(1, 5):
            g = netns.create("g")
            guests[f"g{i}"] = g
            rb.ip(ns, "link", "add", f"vg{i}", "type", "veth", "peer", "name", "eth0", "netns", g)
            rb.ip(ns, "link", "set", f"vg{i}", "master", BRIDGE, "up")
            rb.ip(g, "addr", "add", f"10.77.0.{i + 1}/24", "dev", "eth0")
            rb.ip(g, "link", "set", "eth0", "up")
        rb.wait_forwarding(ns, BRIDGE, [f"vg{i}" for i in range(1, 5)])
        yield guests
    finally:
        for g in guests.values():
            netns.delete(g)


def mac_of(ns: str) -> str:
    return rb.link(ns, "eth0")["address"]


def measure(flows: dict[str, tuple[str, str, str, int]]) -> dict[str, float]:
    """Run every flow (sender ns, receiver ns, receiver address, offered kB/s) at once;
    returns the kB/s each receiver got over 3 s of steady state."""
    py = [sys.executable, "-m", "tests.kernel.udp_rate"]
    receivers, senders = {}, []
    for port, (name, (src, dst, address, offered)) in enumerate(flows.items(), start=5201):
        receivers[name] = subprocess.Popen(
            ["ip", "netns", "exec", dst, *py, "recv", str(port), "1", "4"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receivers[name].stdout and receivers[name].stdout.readline().strip() == "ready"
        senders.append(
            ["ip", "netns", "exec", src, *py, "send", address, str(port), str(offered), "4.5"]
        )
    for proc in [subprocess.Popen(argv) for argv in senders]:
        proc.wait(timeout=30)
    return {
        name: int(r.communicate(timeout=30)[0].split()[-1]) / 3 / 1000
        for name, r in receivers.items()
    }


def test_rates_are_held_to_average_and_floor(host: HostNet, ns: str, lan: dict[str, str]) -> None:
    # g1's port: 800 kB/s in, 600 kB/s out
    mode = host.set_port_bandwidth("vg1", "p-1", Bandwidth(Rate(800), Rate(600)))
    assert mode in ("police", "ifb")
    # the network: 1000 kB/s towards the guests; g3 has a floor of 700, g4 none
    host.ensure_bridge_bandwidth(BRIDGE, "net-1", Bandwidth(Rate(1000)))
    host.set_floor(BRIDGE, Floor(3, mac_of(lan["g3"]), 700))
    got = measure(
        {
            "inbound": (lan["g2"], lan["g1"], "10.77.0.2", 2000),
            "outbound": (lan["g1"], lan["g2"], "10.77.0.3", 1500),
            "floored": (ns, lan["g3"], "10.77.0.4", 1200),
            "open": (ns, lan["g4"], "10.77.0.5", 1200),
        }
    )
    payload = 1400 / 1442  # the limits count Ethernet, IP and UDP headers too
    assert 0.85 * 800 <= got["inbound"] / payload <= 1.15 * 800, got
    assert 0.85 * 600 <= got["outbound"] / payload <= 1.15 * 600, got
    assert got["floored"] / payload >= 0.97 * 700, got
    assert (got["floored"] + got["open"]) / payload <= 1.15 * 1000, got
