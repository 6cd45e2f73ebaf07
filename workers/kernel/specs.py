"""Desired-state specs and results exchanged with the kernel layer (all frozen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALIAS_PREFIX = "virtnet:"
#: link group a bridge is created in, atomically, until its alias is set: the kernel ignores
#: an alias in the creating message, and a worker killed between the two must still find
#: the bridge its own
CREATING_GROUP = 0x766E7400
MAC_TABLE_MANAGERS = ("kernel", "libvirt")


def owner_alias(owner: str) -> str:
    """The IFLA_IFALIAS value that marks a device as created by virtnet for ``owner``."""
    return f"{ALIAS_PREFIX}{owner}"


@dataclass(frozen=True)
class HostCapabilities:
    kernel_release: str
    vlan_filtering: bool
    tun: bool
    net_admin: bool
    #: 802.1Q VLAN devices (the 8021q module), apart from the bridge's VLAN filtering
    vlan_8021q: bool


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    owner: str
    mac: str | None = None
    mtu: int | None = None
    stp: bool = True
    delay: int = 0
    """Forward delay in seconds (libvirt's ``<bridge delay=.../>``); with STP on the kernel
    keeps it within 2..30 s."""
    vlan_filtering: bool = False


@dataclass(frozen=True)
class BridgeResult:
    name: str
    created: bool
    vlan_filtering: bool
    degraded: str | None


@dataclass(frozen=True)
class Rate:
    average: int | None = None
    peak: int | None = None
    burst: int | None = None
    floor: int | None = None


@dataclass(frozen=True)
class Bandwidth:
    inbound: Rate | None = None
    outbound: Rate | None = None

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Bandwidth | None:
        if not doc:
            return None

        def rate(part: dict[str, Any] | None) -> Rate | None:
            return Rate(**{k: v for k, v in part.items() if v}) if part else None

        return cls(rate(doc.get("inbound")), rate(doc.get("outbound")))


@dataclass(frozen=True)
class Floor:
    """A guaranteed minimum on the bridge for one guest MAC (libvirt's networkPlugBandwidth)."""

    class_id: int
    mac: str
    floor: int
    average: int | None = None  # the port's inbound average: libvirt derives the quantum


@dataclass(frozen=True)
class PortSpec:
    tap: str
    bridge: str
    guest_mac: str
    owner: str
    mtu: int | None = None
    mac_table_manager: str = "kernel"
    owner_uid: int | None = None
    owner_gid: int | None = None
    vnet_hdr: bool = True
    multi_queue: bool = False
    fdb: bool = True
    """Only with mac_table_manager "libvirt": False keeps the port plugged without its static
    FDB entry (a paused guest)."""
    netns: str | None = None
    """A container's port: a veth pair whose guest end lives in this network namespace
    (a name under /var/run/netns); None for a VM's tap."""
    guest_ifname: str | None = None
    """The veth guest end's name inside ``netns`` (eth0, eth1, ...)."""
    keep_busy: bool = False
    """On unplug: leave a tap that a process holds open (it has carrier) and fail instead."""
    reuse_held: bool = False
    """On plug: take over this guest's tap from an earlier run if a process still holds it
    (see tapuse.reuse_held)."""

    isolated: bool = False
    """The bridge port's ``isolated`` flag (libvirt's <port isolated='yes'/>)."""
    bandwidth: Bandwidth | None = None
    floor: Floor | None = None
    """This port's guaranteed class on the bridge; its class_id may stay without a floor
    (a floor removed live), which removes the class."""
    class_id: int | None = None
    qos: bool = False
    """The port has had bandwidth settings: compare and clear them even when none are wanted
    now (ports that never had any skip the tc look-ups)."""

    @property
    def kind(self) -> str:
        return "veth" if self.netns else "tap"


@dataclass(frozen=True)
class PortRef:
    """What unplug needs to know about a port; a PortSpec works wherever a PortRef does."""

    tap: str
    owner: str
    bridge: str | None = None
    guest_mac: str | None = None
    kind: str = "tap"
    """'tap' or 'veth' (a container's host end)."""
    keep_busy: bool = False
    class_id: int | None = None


@dataclass(frozen=True)
class OwnedDevice:
    name: str
    kind: str
    owner: str
