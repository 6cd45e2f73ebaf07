"""virtnet's nftables tables in a namespace: installed, replaced, reconciled, others untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.conf.network.firewall import firewall_spec
from app.conf.network.model import NetworkDefinition
from tests import netns
from tests.kernel.conftest import requires_root
from workers.kernel import HostNet, KernelError

pytestmark = [pytest.mark.kernel, requires_root]

UUIDS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 6)]
NETWORKS = [
    {"forward": {"mode": "nat"}, "ips": [{"address": "192.168.122.1", "prefix": 24}]},
    {
        "forward": {
            "mode": "nat",
            "dev": "eth1",
            "nat": {
                "ipv6": True,
                "address_start": "203.0.113.10",
                "address_end": "203.0.113.20",
                "port_start": 2000,
                "port_end": 3000,
            },
        },
        "ips": [{"address": "10.1.0.1", "prefix": 16}, {"address": "fd00:1::1", "prefix": 64}],
    },
    {"forward": {"mode": "route"}, "ips": [{"address": "10.2.0.1", "prefix": 24}]},
    {"ips": [{"address": "10.3.0.1", "prefix": 24}, {"address": "fd00:3::1", "prefix": 64}]},
    {"forward": {"mode": "open"}, "ips": [{"address": "10.4.0.1", "prefix": 24}]},
]


def ruleset(ns: str) -> list[dict]:
    out = netns.run(ns, "nft", "-j", "list", "ruleset").stdout
    return [i for i in json.loads(out)["nftables"] if "metainfo" not in i]


def tables(ns: str) -> set[str]:
    return {i["table"]["name"] for i in ruleset(ns) if "table" in i}


def specs() -> list[dict | None]:
    return [
        firewall_spec(
            NetworkDefinition.model_validate({"name": f"n{i}", **doc}), UUIDS[i], f"vnbr{i}"
        )
        for i, doc in enumerate(NETWORKS)
    ]


def test_tables_installed_replaced_and_reconciled(host: HostNet, ns: str) -> None:
    for command in (
        "add table inet othertool",
        "add chain inet othertool guard { type filter hook forward priority 0 ; }",
        "add rule inet othertool guard iifname vnbr0 drop",
    ):
        netns.run(ns, "nft", command)
    # the overlay's own table is virtnet's too, but no network's: a network reconcile keeps it
    netns.run(ns, "nft", "add table inet virtnet_overlay")
    all_specs = specs()
    assert all_specs[4] is None  # 'open': no rules at all
    for spec in all_specs[:4]:
        assert spec is not None
        host.ensure_firewall(spec)
        host.ensure_firewall(spec)  # twice: replaced, not doubled
    names = {s["table"] for s in all_specs if s}
    assert tables(ns) == names | {"othertool", "virtnet_overlay"}
    assert host.firewall_tables() == names
    rules = [i["rule"] for i in ruleset(ns) if "rule" in i]
    mine = [r for r in rules if r["table"] == all_specs[1]["table"]]
    text = json.dumps(mine)
    assert '"snat"' in text and "203.0.113.10" in text and "2000" in text
    assert '"masquerade"' in text  # the IPv6 subnet, nat ipv6='yes'
    assert len(mine) == len(all_specs[1]["forward"]) + len(all_specs[1]["postrouting"])
    # reconcile: two networks went away
    host.remove_firewall(sorted(names - {all_specs[0]["table"], all_specs[2]["table"]}))
    assert tables(ns) == {
        all_specs[0]["table"],
        all_specs[2]["table"],
        "othertool",
        "virtnet_overlay",
    }
    assert [r for r in ruleset(ns) if "rule" in r and r["rule"]["table"] == "othertool"]
    with pytest.raises(KernelError, match="refusing"):
        host.remove_firewall(["othertool"])
    with pytest.raises(KernelError, match="refusing"):
        host.remove_firewall(["virtnet_overlay"])


def test_ip_forwarding_is_turned_on_in_the_namespace_only(host: HostNet, ns: str) -> None:
    knob = Path("/proc/sys/net/ipv4/ip_forward")
    before = knob.read_text()
    host.enable_ip_forwarding({4, 6})
    assert netns.run(ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert netns.run(ns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
    assert knob.read_text() == before
