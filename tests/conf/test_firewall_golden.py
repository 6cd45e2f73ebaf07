"""Golden test over libvirt 9.0's networkxml2firewalldata: the same decisions, packet by packet.

libvirt's iptables commands and virtnet's nftables table (the JSON it would install) are
both evaluated for a grid of packets: forwarded or rejected, masqueraded (and to which
ports) or not. libvirt's INPUT/OUTPUT accepts for DHCP/DNS and its mangle CHECKSUM fix are
left aside: with the default accept policy they decide nothing (libvirt 10 dropped both).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.conf.network.firewall import firewall_spec
from app.conf.network.xml import network_from_xml
from workers.kernel.nftables import table_commands

FW = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "libvirt-9.0.0" / "networkfirewall"
NAMES = sorted(p.name.removesuffix("-linux.args") for p in FW.glob("*-linux.args"))


@functools.cache
def _within(addr: str, net: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(net)


@dataclass(frozen=True)
class Packet:
    iif: str
    oif: str
    src: str
    dst: str
    proto: str
    state: str  # "new" or "established"

    @property
    def version(self) -> int:
        return 6 if ":" in self.src else 4


# -- libvirt's iptables commands


def iptables_rules(path: Path) -> dict[tuple[int, str], list[dict[str, Any]]]:
    chains: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for command in re.split(r"\n(?=ip6?tables )", path.read_text()):
        argv = [t.strip("'") for t in command.replace("\\\n", " ").split()]
        if not argv:
            continue
        version = 6 if argv[0] == "ip6tables" else 4
        rule: dict[str, Any] = {}
        negate = False
        i = 1
        chain = None
        while i < len(argv):
            opt = argv[i]
            value = argv[i + 1] if i + 1 < len(argv) else None
            if opt == "!":
                negate = True
                i += 1
                continue
            if opt in ("--insert", "--append"):
                chain = (opt, value)
            elif opt in ("--in-interface", "--out-interface", "--source", "--destination"):
                rule[opt] = (value, negate)
            elif opt in ("-p", "--protocol"):
                rule["proto"] = value
            elif opt == "--ctstate":
                rule["ctstate"] = value.lower().split(",") if value else []
            elif opt == "--jump":
                rule["jump"] = value
            elif opt == "--to-ports":
                rule["ports"] = value
            elif opt == "--destination-port":
                rule["dport"] = value
            negate = False
            i += 2 if opt not in ("-w",) and not opt.startswith("--match") else 1
            if opt == "--match":
                i += 1
        if chain is None:
            continue
        where, name = chain
        rules = chains.setdefault((version, name), [])
        if where == "--insert":
            rules.insert(0, rule)
        else:
            rules.append(rule)
    return chains


def _ipt_matches(rule: dict[str, Any], p: Packet) -> bool:
    def check(key: str, actual: str, net: bool) -> bool:
        if key not in rule:
            return True
        value, negate = rule[key]
        hit = _within(actual, value) if net else value == actual
        return hit != negate

    return (
        check("--in-interface", p.iif, False)
        and check("--out-interface", p.oif, False)
        and check("--source", p.src, True)
        and check("--destination", p.dst, True)
        and rule.get("proto", p.proto) == p.proto
        and ("ctstate" not in rule or p.state in rule["ctstate"])
        and "dport" not in rule
    )


def libvirt_decision(chains: dict[tuple[int, str], list[dict[str, Any]]], p: Packet) -> tuple:
    verdict = "accept"
    for chain in ("LIBVIRT_FWX", "LIBVIRT_FWI", "LIBVIRT_FWO"):
        hit = next((r for r in chains.get((p.version, chain), []) if _ipt_matches(r, p)), None)
        if hit is not None:
            verdict = hit["jump"].lower()
            break
    nat = None
    hit = next((r for r in chains.get((p.version, "LIBVIRT_PRT"), []) if _ipt_matches(r, p)), None)
    if hit is not None and hit["jump"] != "RETURN":
        nat = (hit["jump"].lower(), hit.get("ports"))
    return verdict, nat


# -- virtnet's nftables JSON


def _nft_value_matches(left: dict[str, Any], op: str, right: Any, p: Packet) -> bool:
    if "meta" in left:
        key = left["meta"]["key"]
        actual = {
            "iifname": p.iif,
            "oifname": p.oif,
            "l4proto": p.proto,
            "nfproto": f"ipv{p.version}",
        }[key]
        hit = actual == right
    elif "payload" in left:
        family = {"ip": 4, "ip6": 6}[left["payload"]["protocol"]]
        if family != p.version:
            return False  # an ip/ip6 payload match implies that family
        actual = p.src if left["payload"]["field"] == "saddr" else p.dst
        net = (
            f"{right['prefix']['addr']}/{right['prefix']['len']}"
            if isinstance(right, dict)
            else right
        )
        hit = _within(actual, net)
    elif "ct" in left:
        hit = p.state in right
        return hit if op == "in" else not hit
    else:
        raise AssertionError(f"unexpected match {left}")
    return hit if op == "==" else not hit


def virtnet_decision(commands: list[dict[str, Any]], p: Packet) -> tuple:
    chains: dict[str, list[list[dict[str, Any]]]] = {}
    for cmd in commands:
        rule = cmd.get("add", {}).get("rule")
        if rule:
            chains.setdefault(rule["chain"], []).append(rule["expr"])

    def first(chain: str) -> dict[str, Any] | None:
        for exprs in chains.get(chain, []):
            matches = [e["match"] for e in exprs if "match" in e]
            if all(_nft_value_matches(m["left"], m["op"], m["right"], p) for m in matches):
                return next(e for e in exprs if "match" not in e)
        return None

    hit = first("forward")
    verdict = next(iter(hit)) if hit else "accept"
    nat = None
    hit = first("postrouting")
    if hit and "masquerade" in hit:
        port = (hit["masquerade"] or {}).get("port")
        nat = ("masquerade", "-".join(map(str, port["range"])) if port else None)
    return verdict, nat


# -- the grid


def packets(bridge: str, nets: list[str], dev: str | None) -> list[Packet]:
    inside: dict[int, list[str]] = {4: [], 6: []}
    for net in nets:
        n = ipaddress.ip_network(net)
        inside[n.version].append(str(n.network_address + 5))
    outside = {
        4: ["8.8.8.8", "224.0.0.5", "255.255.255.255"],
        6: ["2001:4860::8888", "ff02::1"],
    }
    devices = [bridge, "eth1", "eth0"] + ([dev] if dev else [])
    out = []
    for version in (4, 6):
        addrs = inside[version] + outside[version]
        for iif, oif, src, dst, proto, state in itertools.product(
            devices, devices, addrs, addrs, ("tcp", "udp", "icmp"), ("new", "established")
        ):
            out.append(Packet(iif, oif, src, dst, proto, state))
    return out


def test_the_corpus_is_there() -> None:
    assert len(NAMES) >= 7, f"libvirt's networkfirewall data is missing from {FW}"


@pytest.mark.parametrize("name", NAMES)
def test_same_decisions_as_libvirt(name: str) -> None:
    definition = network_from_xml((FW / f"{name}.xml").read_bytes())
    assert definition.bridge.name
    spec = firewall_spec(definition, "00000000-0000-0000-0000-000000000001", "virbr0")
    assert spec is not None
    commands = table_commands(spec)
    libvirt = iptables_rules(FW / f"{name}-linux.args")
    nets = [str(ip.interface().network) for ip in definition.ips]
    differences = []
    grid = packets("virbr0", nets, definition.forward.dev)
    for p in grid:
        theirs, ours = libvirt_decision(libvirt, p), virtnet_decision(commands, p)
        if theirs != ours:
            differences.append(f"{p}: libvirt {theirs}, virtnet {ours}")
    assert not differences, f"{len(differences)} of {len(grid)} differ:\n" + "\n".join(
        differences[:20]
    )


def test_forward_dev_restricts_the_outside_to_that_device() -> None:
    definition = network_from_xml(
        b"<network><name>n</name><bridge name='virbr0'/><forward mode='nat' dev='eth1'/>"
        b"<ip address='192.168.122.1' netmask='255.255.255.0'/></network>"
    )
    spec = firewall_spec(definition, "00000000-0000-0000-0000-000000000001", "virbr0")
    assert spec is not None
    commands = table_commands(spec)
    guest, outside = "192.168.122.5", "8.8.8.8"

    def decide(iif: str, oif: str, src: str, dst: str, state: str = "new") -> tuple:
        return virtnet_decision(commands, Packet(iif, oif, src, dst, "tcp", state))

    assert decide("virbr0", "eth1", guest, outside) == ("accept", ("masquerade", "1024-65535"))
    assert decide("virbr0", "eth0", guest, outside) == ("reject", None)
    assert decide("eth1", "virbr0", outside, guest, "established")[0] == "accept"
    assert decide("eth0", "virbr0", outside, guest, "established")[0] == "reject"
    assert decide("eth1", "virbr0", outside, guest)[0] == "reject"
