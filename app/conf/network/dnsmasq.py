"""dnsmasq's configuration for a network, with libvirt 9.0's semantics (pure).

libvirt's networkDnsmasqConfContents writes one config file, a DHCP hosts file and an
"additional hosts" file per network; this renders the same three, leaving the host's file
paths as placeholders the host worker fills in (it also adds its pid and lease files).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from app.conf.network.model import (
    LEASE_UNIT_SECONDS,
    DhcpHost,
    DnsSrv,
    IpConfig,
    NetworkDefinition,
)

HOSTSFILE = "{hostsfile}"
ADDNHOSTS = "{addnhosts}"


@dataclass(frozen=True)
class DnsmasqConfig:
    options: list[str]
    """``option=value`` lines, in libvirt's order; paths are HOSTSFILE / ADDNHOSTS."""
    dhcp_hosts: list[str] = field(default_factory=list)
    addn_hosts: list[str] = field(default_factory=list)

    def conf_text(self, *, hostsfile: str, addnhosts: str) -> str:
        lines = [
            o.replace(HOSTSFILE, hostsfile).replace(ADDNHOSTS, addnhosts) for o in self.options
        ]
        return "".join(f"{line}\n" for line in lines)


def needs_dnsmasq(d: NetworkDefinition) -> bool:
    """libvirt's networkStartDhcpDaemon: any address, and DHCP wanted or DNS not disabled."""
    if not d.ips or d.forward.mode == "bridge":
        return False
    wants_dhcp = any(_has_dhcp(ip) for ip in d.ips)
    return wants_dhcp or _want_dns(d)


def _want_dns(d: NetworkDefinition) -> bool:
    return d.dns is None or d.dns.enable is not False


def _has_dhcp(ip: IpConfig) -> bool:
    return ip.dhcp is not None and bool(ip.dhcp.ranges or ip.dhcp.hosts)


def lease_time(seconds: int | None, unit: str | None) -> str | None:
    """networkBuildDnsmasqLeaseTime: '' for none given, 'infinite' for 0, else N{s,m,h}."""
    if seconds is None:
        return None
    if seconds == 0:
        return "infinite"
    unit = unit or next(u for u, s in LEASE_UNIT_SECONDS.items() if seconds % s == 0)
    return f"{seconds // LEASE_UNIT_SECONDS[unit]}{unit[0]}"


def ptr_domain(ip: IpConfig) -> str | None:
    """virSocketAddrPTRDomain: the reverse zone of the subnet, if its prefix allows one."""
    net = ip.interface().network
    step = 8 if net.version == 4 else 4
    if net.prefixlen % step:
        return None
    labels = net.network_address.reverse_pointer.split(".")
    suffix = 2  # in-addr.arpa / ip6.arpa
    keep = net.prefixlen // step
    host_labels = (32 if net.version == 4 else 128) // step - keep
    return ".".join(labels[host_labels : host_labels + keep + suffix])


def dhcp_host_line(host: DhcpHost, ipv6: bool) -> str | None:
    """dnsmasqAddDhcpHost's line for one <host>; hosts without an address are left out."""
    if host.ip is None:
        return None
    if ipv6:
        ip = f"[{host.ip}]"
        if host.id and host.name:
            line = f"id:{host.id},{host.name},{ip}"
        elif host.id:
            line = f"id:{host.id},{ip}"
        elif host.name:
            line = f"{host.name},{ip}"
        else:
            return None
    elif host.mac and host.name:
        line = f"{host.mac},{host.ip},{host.name}"
    elif host.name:
        line = f"{host.name},{host.ip}"
    elif host.mac:
        line = f"{host.mac},{host.ip}"
    else:
        return None
    lease = lease_time(host.lease, host.lease_unit)
    return f"{line},{lease}" if lease else line


def render(d: NetworkDefinition, bridge: str) -> DnsmasqConfig:
    """networkDnsmasqConfContents (libvirt 9.0, dnsmasq with bind-dynamic and RA)."""
    want_dns = _want_dns(d)
    dns = d.dns
    o: list[str] = ["strict-order"]
    if not want_dns:
        o.append("port=0")
    if want_dns and dns is not None and dns.forwarders:
        no_resolv = False
        for fwd in dns.forwarders:
            prefix = f"/{fwd.domain}/" if fwd.domain else ""
            o.append(f"server={prefix}{fwd.addr or '#'}")
            no_resolv = no_resolv or (fwd.addr is not None and not fwd.domain)
        if no_resolv:
            o.append("no-resolv")
    if d.domain is not None:
        if d.domain.local_only:
            o.append(f"local=/{d.domain.name}/")
        o += [f"domain={d.domain.name}", "expand-hosts"]
    if want_dns:
        o += [f"local=/{p}/" for ip in d.ips if ip.local_ptr and (p := ptr_domain(ip))]
    if want_dns and dns is not None and dns.forward_plain_names is False:
        o += ["domain-needed", "local=//"]
    o += ["except-interface=lo", "bind-dynamic", f"interface={bridge}"]
    if d.forward.mode == "none":
        o += ["dhcp-option=3", "no-resolv", "ra-param=*,0,0"]
    if want_dns and dns is not None:
        o += [f"txt-record={t.name},{t.value}" for t in dns.txts]
        o += [_srv(s) for s in dns.srvs]
    for ip in d.ips:
        if ip.interface().version == 4 and ip.tftp_root:
            o += ["enable-tftp", f"tftp-root={ip.tftp_root}"]

    v4 = next((ip for ip in d.ips if ip.interface().version == 4 and _has_dhcp(ip)), None)
    v6 = next((ip for ip in d.ips if ip.interface().version == 6 and _has_dhcp(ip)), None)
    leases = 0
    hosts: list[str] = []
    for ip in (x for x in (v4, v6) if x is not None):
        assert ip.dhcp is not None
        iface = ip.interface()
        ipv6 = iface.version == 6
        size = str(iface.network.prefixlen) if ipv6 else str(iface.network.netmask)
        for rng in ip.dhcp.ranges:
            lease = lease_time(rng.lease, rng.lease_unit)
            o.append(f"dhcp-range={rng.start},{rng.end},{size}" + (f",{lease}" if lease else ""))
            leases += int(ipaddress.ip_address(rng.end)) - int(ipaddress.ip_address(rng.start)) + 1
        if not ip.dhcp.ranges and ip.dhcp.hosts:
            o.append(f"dhcp-range={ip.address},static" + (f",{size}" if ipv6 else ""))
        hosts += [line for h in ip.dhcp.hosts if (line := dhcp_host_line(h, ipv6))]
        if not ipv6:
            o += ["dhcp-no-override", "dhcp-authoritative"]
            if ip.dhcp.bootp is not None:
                boot = ip.dhcp.bootp
                o.append(f"dhcp-boot={boot.file}" + (f",,{boot.server}" if boot.server else ""))
    if leases:
        o.append(f"dhcp-lease-max={leases}")
    if v4 or v6:
        o.append(f"dhcp-hostsfile={HOSTSFILE}")
    addn: list[str] = []
    if want_dns:
        o.append(f"addn-hosts={ADDNHOSTS}")
        if dns is not None:
            addn = ["\t".join([h.ip, *h.hostnames]) for h in dns.hosts]
    if d.mtu:
        o.append(f"dhcp-option=option:mtu,{d.mtu}")
    if v6 is not None:
        o.append("enable-ra")
    else:
        o += [
            f"dhcp-range={ip.address},ra-only"
            for ip in d.ips
            if ip.interface().version == 6 and not _has_dhcp(ip)
        ]
    o += d.dnsmasq_options or []
    return DnsmasqConfig(options=o, dhcp_hosts=hosts, addn_hosts=addn)


def _srv(s: DnsSrv) -> str:
    line = f"srv-host=_{s.service}._{s.protocol}"
    if s.domain:
        line += f".{s.domain}"
    if s.target and s.target != ".":
        line += f",{s.target}"
        if s.port or s.priority or s.weight:
            line += f",{s.port or 1}"
        if s.priority or s.weight:
            line += f",{s.priority or 0}"
        if s.weight:
            line += f",{s.weight}"
    return line
