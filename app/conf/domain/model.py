"""Domains: libvirt's <domain> as far as virtnet reads it, with its network interfaces."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from app.conf.common import (
    NOT_XML_MESSAGE,
    HostName,
    IfName,
    JsonObject,
    MacAddress,
    Name,
    Strict,
    not_xml,
)
from app.conf.errors import Misplaced
from app.conf.network.model import Bandwidth, VirtualPort, Vlan
from app.conf.parts import rule_breaks
from app.conf.xml.safe import Refused, parse


def _libvirt_rules(vlan: Vlan | None, bw: Bandwidth | None, vport: VirtualPort | None) -> None:
    breaks = rule_breaks(vlan, bw, vport)
    if breaks:
        loc, message = breaks[0]
        raise Misplaced(loc, message)


def _repeat(values: list[str | None], among: set[str | None]) -> int | None:
    """The index of the first value of ``among`` that an earlier one repeats."""
    for j, value in enumerate(values):
        if value in among and value in values[:j]:
            return j
    return None


def _no_reserved_tap(name: str | None) -> None:
    if name is not None and name.startswith("vnet"):
        raise Misplaced(
            ("target",), "tap names starting with 'vnet' are reserved for automatic allocation"
        )


#: libvirt 9.0's interface types (virDomainNetType); all are stored, only some are realised
InterfaceType = Literal[
    "network",
    "bridge",
    "ethernet",
    "user",
    "vhostuser",
    "server",
    "client",
    "mcast",
    "udp",
    "internal",
    "direct",
    "hostdev",
    "vdpa",
    "null",
    "vds",
]
#: the interface types virtnet plugs into a bridge when the domain starts
REALISED_TYPES = frozenset({"network", "bridge"})


class InterfaceSource(Strict):
    network: Name | None = None
    portgroup: Name | None = None
    bridge: IfName | None = None


class InterfaceDef(Strict):
    type: InterfaceType
    source: InterfaceSource = Field(
        default_factory=InterfaceSource,
        description="what virtnet reads of <source>: network and portgroup for type 'network', "
        "bridge for type 'bridge'; other types keep their source in the domain's xml",
    )
    mac: MacAddress | None = None
    model: str | None = Field(default=None, max_length=32)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    target: IfName | None = None
    guest: IfName | None = Field(
        default=None,
        description="a container's (type lxc) name for this interface inside its namespace "
        "(libvirt's <guest dev=.../>); default eth0, eth1, ... in interface order",
    )
    queues: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="a VM's queue count (libvirt's <driver queues=.../>): more than 1 makes "
        "the tap multiqueue",
    )
    vlan: Vlan | None = None
    bandwidth: Bandwidth | None = None
    port_isolated: bool | None = None
    virtualport: VirtualPort | None = None

    @model_validator(mode="after")
    def _source_fits_type(self) -> InterfaceDef:
        src = self.source
        if self.type == "network" and (src.network is None or src.bridge is not None):
            raise ValueError("an interface of type 'network' names source.network only")
        if self.type == "bridge" and (src.bridge is None or src.network or src.portgroup):
            raise ValueError("an interface of type 'bridge' names source.bridge only")
        if self.type not in REALISED_TYPES and (src.network or src.portgroup or src.bridge):
            raise ValueError(f"an interface of type {self.type!r} has no source network or bridge")
        _no_reserved_tap(self.target)
        _libvirt_rules(self.vlan, self.bandwidth, self.virtualport)
        inbound = self.bandwidth.inbound if self.bandwidth else None
        if inbound is not None and inbound.floor is not None and self.type != "network":
            raise Misplaced(
                ("bandwidth", "inbound", "floor"), "only an interface of type 'network' has one"
            )
        return self


def _domain_document(text: str) -> str:
    try:
        root = parse(text.encode())
    except Refused as exc:
        raise ValueError(exc.detail) from None
    if root.tag != "domain":
        raise ValueError("must be a libvirt <domain> document")
    return text


DomainXml = Annotated[str, AfterValidator(_domain_document)]


class DomainDefinition(Strict):
    name: Name
    uuid: UUID | None = None
    type: Literal["qemu", "kvm", "lxc"] = "kvm"
    memory: int = Field(default=524288, ge=1, description="KiB")
    vcpus: int = Field(default=1, ge=1, le=4096)
    host: HostName
    description: str | None = None
    metadata: JsonObject | None = None
    interfaces: list[InterfaceDef] = Field(default_factory=list, max_length=1023)
    netns: Name | None = Field(
        default=None,
        description="type lxc: the container's network namespace (default: the domain's name); "
        "an existing one is used as it is, a missing one is created at start and removed at stop",
    )
    xml: DomainXml | None = Field(
        default=None,
        description="the libvirt <domain> document this definition was defined from, kept "
        "verbatim for the XML view; the fields above win over what it says",
    )

    @model_validator(mode="after")
    def _distinct(self) -> DomainDefinition:
        # libvirt lets interfaces share a MAC; virtnet keys ports by MAC, so an interface it
        # plugs must have its own (those it does not plug may repeat one, as libvirt allows)
        macs = [i.mac for i in self.interfaces]
        plugged: set[str | None] = {i.mac for i in self.interfaces if i.type in REALISED_TYPES}
        plugged.discard(None)
        if (j := _repeat(macs, plugged)) is not None:
            raise Misplaced(
                ("interfaces", j, "mac"), "two interfaces of one domain cannot share a MAC address"
            )
        targets = [i.target for i in self.interfaces]
        if (j := _repeat(targets, set(targets) - {None})) is not None:
            raise Misplaced(
                ("interfaces", j, "target"),
                "two interfaces of one domain cannot share a target device",
            )
        guests = [i.guest for i in self.interfaces]
        if (j := _repeat(guests, set(guests) - {None})) is not None:
            raise Misplaced(
                ("interfaces", j, "guest"),
                "two interfaces of one container cannot share a guest name",
            )
        if self.type != "lxc" and (self.netns is not None or any(guests)):
            raise ValueError("netns and interfaces' guest names are for containers (type lxc)")
        if self.type == "lxc" and any(i.queues for i in self.interfaces):
            raise ValueError("queues are for virtual machines' taps, not containers' veths")
        # stored as given and shown as libvirt XML: a NUL or a control character could be neither
        for where in not_xml(self.model_dump(mode="json", exclude={"xml"})):
            raise Misplaced(where, NOT_XML_MESSAGE)
        return self
