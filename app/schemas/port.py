"""Network ports (libvirt's <networkport>) and domains with their interfaces."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from app.schemas.common import HostName, IfName, MacAddress, Name, Strict
from app.schemas.network import Bandwidth, Vlan


class Owner(Strict):
    name: Name
    uuid: UUID


class TapOptions(Strict):
    mtu: int | None = Field(default=None, ge=68, le=65535)
    owner_uid: int | None = Field(default=None, ge=0, le=2**32 - 2)
    owner_gid: int | None = Field(default=None, ge=0, le=2**32 - 2)
    vnet_hdr: bool = True
    multi_queue: bool = False


class PortRequest(TapOptions):
    owner: Owner
    host: HostName
    mac: MacAddress | None = None
    portgroup: Name | None = None
    vlan: Vlan | None = None
    bandwidth: Bandwidth | None = None


def _no_reserved_tap(name: str | None) -> None:
    if name is not None and name.startswith("vnet"):
        raise ValueError("tap names starting with 'vnet' are reserved for automatic allocation")


class InterfaceSource(Strict):
    network: Name | None = None
    portgroup: Name | None = None
    bridge: IfName | None = None


class InterfaceDef(Strict):
    type: Literal["network", "bridge"]
    source: InterfaceSource
    mac: MacAddress | None = None
    model: str | None = Field(default=None, max_length=32)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    target: IfName | None = None

    @model_validator(mode="after")
    def _source_fits_type(self) -> InterfaceDef:
        src = self.source
        if self.type == "network" and (src.network is None or src.bridge is not None):
            raise ValueError("an interface of type 'network' names source.network only")
        if self.type == "bridge" and (src.bridge is None or src.network or src.portgroup):
            raise ValueError("an interface of type 'bridge' names source.bridge only")
        _no_reserved_tap(self.target)
        return self


class DomainDefinition(Strict):
    name: Name
    uuid: UUID | None = None
    type: Literal["qemu", "kvm", "lxc"] = "kvm"
    memory: int = Field(default=524288, ge=1, description="KiB")
    vcpus: int = Field(default=1, ge=1, le=4096)
    host: HostName
    description: str | None = None
    metadata: dict[str, Any] | None = None
    interfaces: list[InterfaceDef] = Field(default_factory=list, max_length=1023)

    @model_validator(mode="after")
    def _distinct(self) -> DomainDefinition:
        macs = [i.mac for i in self.interfaces if i.mac]
        if len(macs) != len(set(macs)):
            raise ValueError("two interfaces of one domain cannot share a MAC address")
        targets = [i.target for i in self.interfaces if i.target]
        if len(targets) != len(set(targets)):
            raise ValueError("two interfaces of one domain cannot share a target device")
        return self
