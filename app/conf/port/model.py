"""Network ports: a port request (JSON) and libvirt's <networkport> document."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from app.conf.common import HostName, IfName, MacAddress, Name, Strict
from app.conf.network.model import Bandwidth, PciAddress, VirtualPort, Vlan


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
    #: the port's id; generated when absent (libvirt's <networkport><uuid>)
    id: UUID | None = None
    owner: Owner
    host: HostName
    mac: MacAddress | None = None
    portgroup: Name | None = None
    vlan: Vlan | None = None
    bandwidth: Bandwidth | None = None
    port_isolated: bool | None = Field(
        default=None, description="<port isolated>; the portgroup's or network's when absent"
    )


class PlugBridge(Strict):
    """<plug type='network'|'bridge'>: a tap on a bridge, what virtnet realises."""

    type: Literal["network", "bridge"]
    bridge: IfName
    mac_table_manager: Literal["kernel", "libvirt"] | None = None


class PlugDirect(Strict):
    type: Literal["direct"]
    dev: IfName
    mode: Literal["bridge", "passthrough", "private", "vepa"] | None = None


class PlugHostdevPci(Strict):
    type: Literal["hostdev-pci"]
    managed: bool | None = None
    driver: Literal["kvm", "vfio"] | None = None
    address: PciAddress


Plug = Annotated[PlugBridge | PlugDirect | PlugHostdevPci, Field(discriminator="type")]


class NetworkPortDocument(Strict):
    """libvirt's <networkport> as a model: every part the XML can say (the JSON API of ports
    is PortRequest and port_view); app.conf.port.xml reads and prints it."""

    uuid: UUID | None = None
    owner: Owner
    group: Name | None = None
    mac: MacAddress | None = None
    virtualport: VirtualPort | None = None
    bandwidth: Bandwidth | None = None
    class_id: int | None = Field(default=None, ge=1, le=2**32 - 1, description="bandwidth classID")
    vlan: Vlan | None = None
    port_isolated: bool | None = None
    trust_guest_rx_filters: bool | None = None
    plug: Plug | None = None
