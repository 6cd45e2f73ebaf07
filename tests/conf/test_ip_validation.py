"""What libvirt checks about a network's addresses and DHCP, each with its clear message."""

from __future__ import annotations

from typing import Any

import pytest

from app.conf.network.model import NetworkDefinition
from app.conf.network.validate import definition_problems


def v4(dhcp: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"address": "192.168.5.1", "prefix": 24, **({"dhcp": dhcp} if dhcp else {}), **extra}


def host(mac: str, ip: str, **extra: str) -> dict[str, str]:
    return {"mac": mac, "ip": ip, **extra}


RANGE = {"ranges": [{"start": "192.168.5.10", "end": "192.168.5.20"}]}
CASES = [
    (
        [v4({"ranges": [{"start": "192.168.6.2", "end": "192.168.6.9"}]})],
        ("ips", 0, "dhcp", "ranges", 0),
        "range 192.168.6.2-192.168.6.9 is not inside 192.168.5.0/24",
    ),
    (
        [v4({"ranges": [{"start": "192.168.5.1", "end": "192.168.5.9"}]})],
        ("ips", 0, "dhcp", "ranges", 0),
        "contains the network's address 192.168.5.1",
    ),
    (
        [v4({"hosts": [host("52:54:00:00:00:01", "10.0.0.1")]})],
        ("ips", 0, "dhcp", "hosts", 0, "ip"),
        "10.0.0.1 is not inside 192.168.5.0/24",
    ),
    (
        [v4({"hosts": [host("52:54:00:00:00:01", "192.168.5.1")]})],
        ("ips", 0, "dhcp", "hosts", 0, "ip"),
        "192.168.5.1 is the network's own address",
    ),
    (
        [
            v4(
                {
                    "hosts": [
                        host("52:54:00:00:00:01", "192.168.5.7"),
                        host("52:54:00:00:00:01", "192.168.5.8"),
                    ]
                }
            )
        ],
        ("ips", 0, "dhcp", "hosts", 1, "mac"),
        "mac 52:54:00:00:00:01 is already given to DHCP host 0",
    ),
    (
        [
            v4(
                {
                    "hosts": [
                        host("52:54:00:00:00:01", "192.168.5.7"),
                        host("52:54:00:00:00:02", "192.168.5.7"),
                    ]
                }
            )
        ],
        ("ips", 0, "dhcp", "hosts", 1, "ip"),
        "ip 192.168.5.7 is already given to DHCP host 0",
    ),
    (
        [
            v4(RANGE),
            {
                "address": "10.9.0.1",
                "prefix": 16,
                "dhcp": RANGE | {"ranges": [{"start": "10.9.0.5", "end": "10.9.0.9"}]},
            },
        ],
        ("ips", 1, "dhcp"),
        "only one IPv4 address of a network can have DHCP; ips.0 already has it",
    ),
    (
        [v4(local_ptr=True) | {"prefix": 20}],
        ("ips", 0, "local_ptr"),
        "localPtr needs a prefix that is a multiple of 8",
    ),
]


@pytest.mark.parametrize(("ips", "loc", "says"), CASES)
def test_refused_with_a_clear_message(ips: list[dict[str, Any]], loc: tuple, says: str) -> None:
    definition = NetworkDefinition.model_validate(
        {"name": "n", "forward": {"mode": "nat"}, "ips": ips}
    )
    problems = [(p.loc, p.msg) for p in definition_problems(definition)]
    assert any(p_loc == loc and says in msg for p_loc, msg in problems), problems


def test_one_dhcp_block_per_family_is_fine() -> None:
    ips = [
        v4(RANGE),
        {
            "address": "fd00::1",
            "prefix": 64,
            "dhcp": {"ranges": [{"start": "fd00::10", "end": "fd00::20"}]},
        },
    ]
    definition = NetworkDefinition.model_validate({"name": "n", "ips": ips})
    assert definition_problems(definition) == []
