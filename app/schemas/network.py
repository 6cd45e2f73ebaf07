"""The network definition, modelled on libvirt's network XML (formatnetwork), in snake_case."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from app.schemas.common import IfName, Kbytes, MacAddress, Name, Strict

ForwardMode = Literal[
    "none", "nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev"
]
#: Modes realised by creating (or, for ``bridge``, attaching to) a Linux bridge.
BRIDGE_MODES = frozenset({"none", "nat", "route", "open", "bridge"})


class BandwidthRate(Strict):
    average: Kbytes | None = None
    peak: Kbytes | None = None
    burst: Kbytes | None = None
    floor: Kbytes | None = None


class Bandwidth(Strict):
    inbound: BandwidthRate | None = None
    outbound: BandwidthRate | None = None


class VlanTag(Strict):
    id: int = Field(ge=0, le=4095)
    native_mode: Literal["tagged", "untagged"] | None = None


class Vlan(Strict):
    trunk: bool | None = None
    tags: list[VlanTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _native(self) -> Vlan:
        natives = [t for t in self.tags if t.native_mode]
        if len(natives) > 1:
            raise ValueError("at most one vlan tag can be native")
        if len(self.tags) > 1 and self.trunk is False:
            raise ValueError("several vlan tags need trunk mode")
        return self


class VirtualPortParameters(Strict):
    manager_id: int | None = None
    type_id: int | None = None
    type_id_version: int | None = None
    instance_id: str | None = None
    profile_id: str | None = None
    interface_id: str | None = None


class VirtualPort(Strict):
    type: Literal["802.1Qbg", "802.1Qbh", "openvswitch", "midonet"] | None = None
    parameters: VirtualPortParameters | None = None


class Bridge(Strict):
    name: IfName | None = None
    stp: bool = True
    delay: int = Field(default=0, ge=0, le=4_294_967)
    mac_table_manager: Literal["kernel", "libvirt"] = "kernel"
    zone: str | None = None


class Nat(Strict):
    ipv6: bool | None = None
    address_start: str | None = None
    address_end: str | None = None
    port_start: int | None = Field(default=None, ge=0, le=65535)
    port_end: int | None = Field(default=None, ge=0, le=65535)


class ForwardInterface(Strict):
    dev: IfName


class PciAddress(Strict):
    type: Literal["pci"] = "pci"
    domain: str = "0x0000"
    bus: str
    slot: str
    function: str


class Forward(Strict):
    mode: ForwardMode = "none"
    dev: IfName | None = None
    managed: bool | None = None
    driver: Literal["kvm", "vfio", "xen"] | None = None
    nat: Nat | None = None
    interfaces: list[ForwardInterface] = Field(default_factory=list)
    pfs: list[ForwardInterface] = Field(default_factory=list, max_length=1)
    addresses: list[PciAddress] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits_mode(self) -> Forward:
        if self.nat is not None and self.mode != "nat":
            raise ValueError("nat settings only apply to forward mode 'nat'")
        return self


class DhcpRange(Strict):
    start: str
    end: str
    lease: int | None = Field(default=None, ge=0, description="lease time in seconds")


class DhcpHost(Strict):
    mac: MacAddress | None = None
    id: str | None = None
    name: str | None = None
    ip: str | None = None
    lease: int | None = Field(default=None, ge=0)


class Bootp(Strict):
    file: str
    server: str | None = None


class Dhcp(Strict):
    ranges: list[DhcpRange] = Field(default_factory=list)
    hosts: list[DhcpHost] = Field(default_factory=list)
    bootp: Bootp | None = None


class IpConfig(Strict):
    address: str
    prefix: int | None = Field(default=None, ge=0, le=128)
    netmask: str | None = None
    family: Literal["ipv4", "ipv6"] | None = None
    local_ptr: bool | None = None
    tftp_root: str | None = None
    dhcp: Dhcp | None = None

    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        """The address with its prefix; only valid after validation."""
        if self.prefix is not None:
            return ipaddress.ip_interface(f"{self.address}/{self.prefix}")
        if self.netmask is not None:
            return ipaddress.ip_interface(f"{self.address}/{self.netmask}")
        return ipaddress.ip_interface(self.address)


class Route(Strict):
    family: Literal["ipv4", "ipv6"] | None = None
    address: str
    prefix: int | None = Field(default=None, ge=0, le=128)
    netmask: str | None = None
    gateway: str
    metric: int | None = Field(default=None, ge=1)


class DnsForwarder(Strict):
    addr: str | None = None
    domain: str | None = None


class DnsTxt(Strict):
    name: str
    value: str


class DnsHost(Strict):
    ip: str
    hostnames: list[str] = Field(min_length=1)


class DnsSrv(Strict):
    service: str
    protocol: str
    domain: str | None = None
    target: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)
    priority: int | None = Field(default=None, ge=0, le=65535)
    weight: int | None = Field(default=None, ge=0, le=65535)


class Dns(Strict):
    enable: bool | None = None
    forward_plain_names: bool | None = None
    forwarders: list[DnsForwarder] = Field(default_factory=list)
    txts: list[DnsTxt] = Field(default_factory=list)
    hosts: list[DnsHost] = Field(default_factory=list)
    srvs: list[DnsSrv] = Field(default_factory=list)


class Domain(Strict):
    name: str
    local_only: bool | None = None
    register_names: bool | None = None


class PortGroup(Strict):
    name: Name
    default: bool = False
    vlan: Vlan | None = None
    bandwidth: Bandwidth | None = None
    virtualport: VirtualPort | None = None
    trust_guest_rx_filters: bool | None = None


class NetworkDefinition(Strict):
    """What a user defines; every field libvirt's network XML can say has a place here."""

    name: Name
    uuid: UUID | None = None
    title: str | None = Field(default=None, max_length=1024)
    description: str | None = None
    metadata: dict[str, Any] | None = None
    ipv6: bool | None = None
    trust_guest_rx_filters: bool | None = None
    bridge: Bridge = Field(default_factory=Bridge)
    mac: MacAddress | None = None
    mtu: int | None = Field(default=None, ge=68, le=65535)
    domain: Domain | None = None
    dns: Dns | None = None
    forward: Forward = Field(default_factory=Forward)
    ips: list[IpConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    portgroups: list[PortGroup] = Field(default_factory=list)
    vlan: Vlan | None = None
    bandwidth: Bandwidth | None = None
    virtualport: VirtualPort | None = None
    port_isolated: bool | None = None
    autostart: bool = False
