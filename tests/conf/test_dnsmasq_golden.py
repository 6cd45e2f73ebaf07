"""Golden test over libvirt 9.0's networkxml2confdata: virtnet's dnsmasq files mean the same.

For every network there, the options (order kept, paths and comments aside) and the DHCP
hosts file lines must be libvirt's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.conf.network.dnsmasq import ADDNHOSTS, HOSTSFILE, needs_dnsmasq, render
from app.conf.network.xml import network_from_xml

CONF = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "libvirt-9.0.0" / "networkconf"
NAMES = sorted(p.stem for p in CONF.glob("*.xml"))


def _meaning(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if key in ("dhcp-hostsfile", "addn-hosts"):
            value = "<path>"
        out.append(f"{key}={value}" if _ else key)
    return out


def test_the_corpus_is_there() -> None:
    assert len(NAMES) >= 20, f"libvirt's networkconf data is missing from {CONF}"


@pytest.mark.parametrize("name", NAMES)
def test_dnsmasq_config_means_what_libvirt_writes(name: str) -> None:
    raw = (CONF / f"{name}.xml").read_bytes()
    # virtnet's names are stricter than libvirt's; the name only shows in file paths
    raw = raw.replace(b'default"with"quotes"', b"default-with-quotes")
    definition = network_from_xml(raw)
    # libvirt starts no dnsmasq without DHCP and with DNS off, though its test renders one
    assert needs_dnsmasq(definition) is (name != "routed-network-no-dns")
    assert definition.bridge.name is not None
    config = render(definition, definition.bridge.name)
    ours = config.conf_text(hostsfile="/h", addnhosts="/a").splitlines()
    theirs = (CONF / f"{name}.conf").read_text().splitlines()
    assert _meaning(ours) == _meaning(theirs)
    assert all(HOSTSFILE not in o and ADDNHOSTS not in o for o in ours)
    hostsfile = CONF / f"{name}.hostsfile"
    expected = hostsfile.read_text().splitlines() if hostsfile.exists() else []
    assert config.dhcp_hosts == expected
