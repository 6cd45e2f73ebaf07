"""libvirt's net-update on a definition (pure): add, modify or delete one DHCP host or DNS entry.

Like virNetworkDefUpdateSection for the sections whose change dnsmasq can take without a
restart (DHCP hosts, DNS hosts) and the DNS records that need one (TXT, SRV). Entries are
given as libvirt's XML element (``<host mac=.. ip=../>``...) or as the JSON object.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.conf.network.model import DhcpHost, Dns, DnsHost, DnsSrv, DnsTxt, NetworkDefinition

Command = Literal["add-first", "add-last", "modify", "delete"]
Section = Literal["ip-dhcp-host", "dns-host", "dns-txt", "dns-srv"]
Entry = DhcpHost | DnsHost | DnsTxt | DnsSrv
MODELS: dict[str, type[Entry]] = {
    "ip-dhcp-host": DhcpHost,
    "dns-host": DnsHost,
    "dns-txt": DnsTxt,
    "dns-srv": DnsSrv,
}
#: what the definition's XML wraps each section's element in, to reuse the network parser;
#: the subnet there is any small one holding the host's address: the real one is checked on
#: the updated network
XML_WRAPPERS = {
    "ip-dhcp-host": ("<ip address='{addr}' prefix='{prefix}'><dhcp>", "</dhcp></ip>"),
    "dns-host": ("<dns>", "</dns>"),
    "dns-txt": ("<dns>", "</dns>"),
    "dns-srv": ("<dns>", "</dns>"),
}


def wrap(section: str, element: str) -> str:
    """A whole <network> holding ``element``, for the network XML parser."""
    before, after = XML_WRAPPERS[section]
    found = re.search(r"""\bip\s*=\s*["']([^"']*)["']""", element)
    addr, prefix = "192.0.2.1", 24
    with contextlib.suppress(ValueError):
        host = ipaddress.ip_address(found.group(1)) if found else None
        if host is not None:
            prefix = 30 if host.version == 4 else 126
            net = ipaddress.ip_network(f"{host}/{prefix}", strict=False)
            addr = str(net.network_address + (2 if host == net.network_address + 1 else 1))
    before = before.replace("{addr}", addr).replace("{prefix}", str(prefix))
    return f"<network><name>update</name>{before}{element}{after}</network>"


class UpdateRequest(BaseModel):
    command: Command
    section: Section
    parent_index: int | None = Field(
        default=None,
        ge=0,
        description="ip-dhcp-host: which <ip> (by default the one whose "
        "subnet holds the host's address, else the first with DHCP)",
    )
    xml: str | None = Field(default=None, description="the entry as libvirt XML")
    entry: dict[str, Any] | None = Field(default=None, description="the entry as JSON")
    live: bool | None = Field(default=None, description="change the running network")
    config: bool | None = Field(default=None, description="change the stored definition")


class UpdateRefused(ValueError):
    """The update does not apply to this definition; str() says why."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _key(section: str, entry: Any) -> tuple[Any, ...]:
    """What identifies an entry, as libvirt matches them for modify and delete."""
    if section == "ip-dhcp-host":
        return (
            ("mac", entry.mac)
            if entry.mac
            else ("id", entry.id)
            if entry.id
            else (
                "name",
                entry.name,
            )
        )
    if section == "dns-host":
        return (entry.ip,)
    if section == "dns-txt":
        return (entry.name,)
    return (entry.service, entry.protocol, entry.domain, entry.target)


def _dhcp_ip_index(d: NetworkDefinition, host: DhcpHost, parent: int | None) -> int:
    if parent is not None:
        if parent >= len(d.ips):
            raise UpdateRefused(f"parent_index {parent}: the network has {len(d.ips)} <ip>")
        return parent
    if host.ip:
        addr = ipaddress.ip_address(host.ip)
        for i, ip in enumerate(d.ips):
            if addr in ip.interface().network:
                return i
    for i, ip in enumerate(d.ips):
        if ip.dhcp is not None:
            return i
    raise UpdateRefused("the network has no <ip> with DHCP to hold this host")


def apply(d: NetworkDefinition, req: UpdateRequest, entry: Entry) -> NetworkDefinition:
    """The definition with the update made; UpdateRefused when it cannot be."""
    new = d.model_copy(deep=True)
    if req.section == "ip-dhcp-host":
        assert isinstance(entry, DhcpHost)
        ip = new.ips[_dhcp_ip_index(new, entry, req.parent_index)]
        if ip.dhcp is None:
            from app.conf.network.model import Dhcp

            ip.dhcp = Dhcp()
        items: list[Any] = ip.dhcp.hosts
    else:
        if new.dns is None:
            new.dns = Dns()
        field = {"dns-host": "hosts", "dns-txt": "txts", "dns-srv": "srvs"}[req.section]
        items = getattr(new.dns, field)
    key = _key(req.section, entry)
    found = [i for i, item in enumerate(items) if _key(req.section, item) == key]
    what = f"{req.section} {'/'.join(str(k) for k in key if k is not None)}"
    if req.command in ("add-first", "add-last"):
        if found:
            raise UpdateRefused(f"there is already a {what}; use modify", conflict=True)
        items.insert(0 if req.command == "add-first" else len(items), entry)
    elif not found:
        raise UpdateRefused(f"there is no {what} to {req.command}", conflict=True)
    elif req.command == "modify":
        items[found[0]] = entry
    else:
        del items[found[0]]
    return NetworkDefinition.model_validate(new.model_dump())


def _without_live_parts(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in ("dns", "autostart")}
    dns = {k: v for k, v in (doc.get("dns") or {}).items() if k not in ("hosts", "txts", "srvs")}
    out["dns"] = dns or None
    # an overlay's gateway host moves live: addresses, DHCP and NAT go from one host to another
    if doc.get("overlay"):
        out["overlay"] = {k: v for k, v in doc["overlay"].items() if k != "gateway_host"}
    out["ips"] = [
        {**ip, "dhcp": {**(ip.get("dhcp") or {}), "hosts": []}} for ip in doc.get("ips", [])
    ]
    return out


def needs_restart(running: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when ``wanted`` differs from ``running`` beyond what applies live: DHCP hosts and
    DNS hosts, TXT and SRV records, and an overlay's gateway host."""
    return _without_live_parts(running) != _without_live_parts(wanted)
