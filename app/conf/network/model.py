"""The network definition, modelled on libvirt's network XML (formatnetwork), in snake_case."""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from typing import Annotated, Any, Literal, cast
from uuid import UUID

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from app.conf.common import HostName, IfName, JsonObject, Kbytes, MacAddress, Name, Strict
from app.conf.xml.metadata import canonical_text
from app.conf.xml.reader import any_base

ForwardMode = Literal[
    "none", "nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev"
]
#: Modes realised by creating (or, for ``bridge``, attaching to) a Linux bridge.
BRIDGE_MODES = frozenset({"none", "nat", "route", "open", "bridge"})
LeaseUnit = Literal["seconds", "minutes", "hours"]
LEASE_UNIT_SECONDS: dict[str, int] = {"hours": 3600, "minutes": 60, "seconds": 1}

# Models below also bring a definition to the one form libvirt prints and parses back
# (an address as libvirt formats it, settings libvirt drops when empty or default
# dropped here too), so JSON and XML are two lossless views of one document. These
# canonicalising validators never refuse anything: refusals live in app.conf.network.validate.


def _canonical_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        return value


IpText = Annotated[str, AfterValidator(_canonical_ip)]
UuidText = Annotated[str, AfterValidator(_canonical_uuid)]
MetadataElement = Annotated[str, AfterValidator(canonical_text)]


def _is_empty(model: Strict | None) -> bool:
    return model is not None and not any(
        value not in (None, []) for value in model.__dict__.values()
    )


def _pci_number(text: str) -> int | None:
    try:
        return any_base(text)
    except ValueError:
        return None


def _canonical_lease_unit(lease: int | None, unit: LeaseUnit | None) -> LeaseUnit | None:
    """The unit libvirt prints a lease in: none for infinite, else the largest exact one."""
    if lease == 0:
        return None
    if lease is None or unit is not None:
        return unit
    return cast(LeaseUnit, next(u for u, s in LEASE_UNIT_SECONDS.items() if lease % s == 0))


def _libvirt_rate(value: Any, info: ValidationInfo) -> Any:
    """A negative rate gets libvirt's own words (virNetDevBandwidthParseRate)."""
    if isinstance(value, int | str) and str(value).strip().startswith("-"):
        raise ValueError(f"could not convert bandwidth {info.field_name} value '{value}'")
    return value


class BandwidthRate(Strict):
    average: Kbytes | None = None
    peak: Kbytes | None = None
    burst: Kbytes | None = None
    floor: Kbytes | None = None

    _no_negative = field_validator("average", "peak", "burst", "floor", mode="before")(
        _libvirt_rate
    )


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
        if natives and self.trunk is False:
            raise ValueError("a native vlan tag needs trunk mode")
        return self

    @model_validator(mode="after")
    def _libvirt_form(self) -> Vlan:
        # libvirt discards trunk='no' on a single tag and implies trunk for several
        self.trunk = True if len(self.tags) > 1 else (self.trunk or None)
        return self


class VirtualPortParameters(Strict):
    manager_id: int | None = None
    type_id: int | None = None
    type_id_version: int | None = None
    instance_id: UuidText | None = None
    profile_id: str | None = None
    interface_id: UuidText | None = None


class VirtualPort(Strict):
    type: Literal["802.1Qbg", "802.1Qbh", "openvswitch", "midonet"] | None = None
    parameters: VirtualPortParameters | None = None

    @model_validator(mode="after")
    def _libvirt_form(self) -> VirtualPort:
        if _is_empty(self.parameters):
            self.parameters = None
        return self


class Bridge(Strict):
    name: IfName | None = None
    stp: bool = True
    delay: int = Field(default=0, ge=0, le=4_294_967)
    #: unset means "kernel", as in libvirt, which prints the attribute back only when given
    mac_table_manager: Literal["kernel", "libvirt"] | None = None
    zone: str | None = None


class Overlay(Strict):
    """One network across hosts: a VXLAN segment whose forwarding table virtnet writes."""

    type: Literal["vxlan"] = "vxlan"
    vni: int = Field(ge=1, le=16_777_215, description="VXLAN network identifier, unique")
    port: int = Field(default=4789, ge=1, le=65535, description="UDP port on the underlay")
    gateway_host: HostName | None = Field(
        default=None,
        description="the one host that carries the network's addresses, DHCP and NAT",
    )


class Nat(Strict):
    ipv6: bool | None = None
    address_start: IpText | None = None
    address_end: IpText | None = None
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

    @model_validator(mode="after")
    def _libvirt_form(self) -> PciAddress:
        for field, width in (("domain", 4), ("bus", 2), ("slot", 2), ("function", 1)):
            number = _pci_number(getattr(self, field))
            if number is not None:
                setattr(self, field, f"0x{number:0{width}x}")
        return self

    def numbers(self) -> tuple[int | None, ...]:
        return tuple(_pci_number(v) for v in (self.domain, self.bus, self.slot, self.function))


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

    @model_validator(mode="after")
    def _libvirt_form(self) -> Forward:
        # libvirt keeps one list of devices: dev is only another name for the first one
        if self.interfaces and self.dev is None:
            self.dev = self.interfaces[0].dev
        elif self.dev is not None and not (self.interfaces or self.pfs or self.addresses):
            self.interfaces = [ForwardInterface(dev=self.dev)]
        if self.mode == "hostdev" and self.managed is None:
            self.managed = False
        if _is_empty(self.nat):
            self.nat = None
        return self


LEASE_UNIT_DOC = (
    "the unit libvirt's XML states the lease in (lease itself stays in seconds); "
    "by default the largest unit that divides it"
)


class DhcpRange(Strict):
    start: IpText
    end: IpText
    lease: int | None = Field(default=None, ge=0, description="lease time in seconds")
    lease_unit: LeaseUnit | None = Field(default=None, description=LEASE_UNIT_DOC)

    @model_validator(mode="after")
    def _libvirt_form(self) -> DhcpRange:
        self.lease_unit = _canonical_lease_unit(self.lease, self.lease_unit)
        return self


class DhcpHost(Strict):
    mac: MacAddress | None = None
    id: str | None = None
    name: str | None = None
    ip: IpText | None = None
    lease: int | None = Field(default=None, ge=0)
    lease_unit: LeaseUnit | None = Field(default=None, description=LEASE_UNIT_DOC)

    @model_validator(mode="after")
    def _libvirt_form(self) -> DhcpHost:
        self.lease_unit = _canonical_lease_unit(self.lease, self.lease_unit)
        return self


class Bootp(Strict):
    file: str
    server: IpText | None = None


class Dhcp(Strict):
    ranges: list[DhcpRange] = Field(default_factory=list)
    hosts: list[DhcpHost] = Field(default_factory=list)
    bootp: Bootp | None = None


class IpConfig(Strict):
    address: IpText
    prefix: int | None = Field(default=None, ge=0, le=128)
    netmask: IpText | None = None
    family: Literal["ipv4", "ipv6"] | None = None
    local_ptr: bool | None = None
    tftp_root: str | None = None
    dhcp: Dhcp | None = None

    @model_validator(mode="after")
    def _libvirt_form(self) -> IpConfig:
        if _is_empty(self.dhcp):
            self.dhcp = None
        return self

    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        """The address with its prefix; only valid after validation."""
        if self.prefix is not None:
            return ipaddress.ip_interface(f"{self.address}/{self.prefix}")
        if self.netmask is not None:
            return ipaddress.ip_interface(f"{self.address}/{self.netmask}")
        address = ipaddress.ip_address(self.address)
        if address.version == 4:
            # libvirt's default for an IPv4 address without prefix: its class's network
            first = int(address) >> 24
            return ipaddress.ip_interface(
                f"{address}/{8 if first < 128 else 16 if first < 192 else 24}"
            )
        return ipaddress.ip_interface(self.address)


class Route(Strict):
    family: Literal["ipv4", "ipv6"] | None = None
    address: IpText
    prefix: int | None = Field(default=None, ge=0, le=128)
    netmask: IpText | None = None
    gateway: IpText
    metric: int | None = Field(default=None, ge=1)


class DnsForwarder(Strict):
    addr: IpText | None = None
    domain: str | None = None


class DnsTxt(Strict):
    name: str
    value: str


class DnsHost(Strict):
    ip: IpText
    hostnames: list[str] = Field(min_length=1)


class DnsSrv(Strict):
    service: str
    protocol: str
    domain: str | None = None
    target: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)
    priority: int | None = Field(default=None, ge=0, le=65535)
    weight: int | None = Field(default=None, ge=0, le=65535)

    @model_validator(mode="after")
    def _libvirt_form(self) -> DnsSrv:
        # libvirt prints neither a zero priority nor a zero weight: both mean "unset"
        self.priority = self.priority or None
        self.weight = self.weight or None
        return self


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
    port_isolated: bool | None = Field(
        default=None,
        description="virtnet's extension: <port isolated> for the portgroup's ports "
        "(libvirt has it on networks and interfaces only)",
    )

    @model_validator(mode="after")
    def _libvirt_form(self) -> PortGroup:
        _drop_empty(self)
        return self


def _drop_empty(model: PortGroup | NetworkDefinition) -> None:
    if _is_empty(model.bandwidth):
        model.bandwidth = None
    if _is_empty(model.virtualport):
        model.virtualport = None


class NetworkDefinition(Strict):
    """What a user defines; every field libvirt's network XML can say has a place here."""

    name: Name
    uuid: UUID | None = None
    title: str | None = Field(default=None, max_length=1024)
    description: str | None = None
    metadata: JsonObject | None = None
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
    overlay: Overlay | None = None
    autostart: bool = False
    metadata_xml: list[MetadataElement] | None = Field(
        default=None,
        min_length=1,
        description="the foreign elements of libvirt's <metadata>, verbatim: "
        "one element in its own XML namespace each",
    )
    dnsmasq_options: list[str] | None = Field(
        default=None,
        min_length=1,
        description="<dnsmasq:options>: extra dnsmasq options, passed on unchecked",
    )

    @model_validator(mode="after")
    def _libvirt_form(self) -> NetworkDefinition:
        # ipv6='no' is libvirt's default and is never printed
        self.ipv6 = self.ipv6 or None
        if _is_empty(self.dns):
            self.dns = None
        _drop_empty(self)
        return self
