"""Messages to a host worker: the bundle, and the steps inside it (each also a task of its
own). Every default of the desired state is written here, once; the host reads these types."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.messages import names
from app.messages.base import Message, MessageError
from app.messages.overlay import OverlayState, SyncOverlay, SyncOverlayDelta

MacTableManager = Literal["kernel", "libvirt"]


class HostPort(Message):
    """The whole desired state of one port on its host (app.services.ports.host_port)."""

    port_id: str
    generation: int
    tap: str
    bridge: str
    guest_mac: str
    present: bool = True
    owner_uuid: str | None = None
    mac_table_manager: MacTableManager = "kernel"
    #: with mac_table_manager "libvirt": False keeps the port without its static FDB entry
    fdb: bool = True
    mtu: int | None = None
    owner_uid: int | None = None
    owner_gid: int | None = None
    vnet_hdr: bool = True
    multi_queue: bool = False
    plug_type: str | None = None
    #: a container's port: a veth pair whose guest end is in this namespace
    netns: str | None = None
    guest_ifname: str | None = None
    queues: int | None = None
    keep_busy: bool = False
    reuse_held: bool = False
    isolated: bool = False
    bandwidth: dict[str, Any] | None = None
    qos: bool = False
    class_id: int | None = None

    @property
    def owner(self) -> str:
        """Whose ports stay together when one of its taps is held (the domain)."""
        return self.owner_uuid or self.port_id

    @property
    def floor(self) -> int | None:
        """The guaranteed inbound rate, when the port has a class on the bridge for it."""
        inbound = (self.bandwidth or {}).get("inbound") or {}
        floor = inbound.get("floor")
        return int(floor) if floor and self.class_id is not None else None


class NetworkSpec(Message):
    """The whole desired state of one network on a host (app.services.realisation.host_spec);
    the host looks nothing up."""

    network_id: int
    generation: int
    uuid: str
    name: str
    bridge: str
    mode: str = "none"
    stp: bool = True
    delay: int = 0
    mac_table_manager: MacTableManager = "kernel"
    mac: str | None = None
    mtu: int | None = None
    bandwidth: dict[str, Any] | None = None
    vni: int | None = None
    ips: list[str] = Field(default_factory=list)
    #: dnsmasq's files (app.conf.network.dnsmasq.render), None without DHCP/DNS here
    dnsmasq: dict[str, Any] | None = None
    firewall: dict[str, Any] | None = None
    #: the IP versions (4, 6) this network needs forwarding for
    ip_forwarding: list[int] = Field(default_factory=list)
    overlay: OverlayState | None = None

    @property
    def owns_bridge(self) -> bool:
        """False for <forward mode='bridge'>: an existing host bridge, never ours to change."""
        return self.mode != "bridge"


class ApplyPorts(Message):
    ports: list[HostPort]


class RealiseNetwork(Message):
    network: NetworkSpec


class RemoveNetwork(Message):
    network: NetworkSpec


class ReconcileHost(Message):
    """The host's whole desired state: what is ours and not in it goes."""

    networks: list[NetworkSpec]
    ports: list[HostPort] = Field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The ports without their fields at the default (read back as the default): a
        host's 10,000 ports are 2 MB of JSON instead of 5, encoded, sent and read faster."""
        out = self.model_dump(mode="json", exclude={"networks"}, exclude_defaults=True)
        return {"networks": [n.wire() for n in self.networks], "ports": out.get("ports", [])}


#: the payload of each step (and single-step task) by task name
STEPS: dict[str, type[Message]] = {
    names.APPLY_PORTS: ApplyPorts,
    names.REALISE_NETWORK: RealiseNetwork,
    names.REMOVE_NETWORK: RemoveNetwork,
    names.RECONCILE_HOST: ReconcileHost,
    names.SYNC_OVERLAY: SyncOverlay,
    names.SYNC_OVERLAY_DELTA: SyncOverlayDelta,
}


def read_step(name: str, payload: Any) -> Message:
    """One step of a bundle as its type; MessageError for an unknown or malformed step."""
    kind = STEPS.get(name)
    if kind is None:
        raise MessageError(f"unknown host step {name!r}")
    if not isinstance(payload, dict | Message):
        raise MessageError(f"malformed {name} message: not an object")
    return kind.read(payload, name)


class Bundle(Message):
    """What one transaction decided for one host, at the host's desired ``revision``;
    ``base`` is the revision it builds on (for a ``full`` one, the snapshot's)."""

    base: int
    revision: int
    full: bool = False
    #: [task name, payload] in the order decided; read each with ``read_step``
    steps: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)
