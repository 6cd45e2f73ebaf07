"""Messages from a host worker to the control worker. Each is signed (app.host_identity):
``signature`` travels next to these fields and is not part of them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.messages.base import Message
from app.messages.errors import HostErrorCode

PortState = Literal["plugged", "absent", "failed", "busy"]
RealisationState = Literal["active", "degraded", "failed"]


class PortResult(Message):
    """What a host did with one port of an ApplyPorts/ReconcileHost step."""

    port_id: str
    generation: int
    tap: str
    bridge: str
    guest_mac: str
    state: PortState
    error: str | None = None
    error_code: HostErrorCode | None = None
    #: this port's share of its batch's time on the host
    seconds: float = 0.0
    #: how a plugged port's outbound limit is enforced (None: none)
    outbound: str | None = None


class PortsReport(Message):
    host: str
    results: list[PortResult]
    #: the desired revision the batch brought the host to, as an AppliedReport would say
    #: after it (None: that report follows on its own, as an older worker sends it)
    applied: int | None = None


class RealisationReport(Message):
    host: str
    network_id: int
    generation: int
    state: RealisationState
    error: str | None = None
    error_code: HostErrorCode | None = None


class AppliedReport(Message):
    """The desired revision the host has reached; its other reports went first."""

    host: str
    revision: int


class LeasesReport(Message):
    host: str
    network_id: int
    #: dnsmasq's leases as workers.network_services.lease_view shows them
    leases: list[dict[str, Any]]


class OverlayReport(Message):
    host: str
    network_id: int
    generation: int
    digest: str | None
    remote_entries: int = 0
    error: str | None = None
    error_code: HostErrorCode | None = None
    #: netlink requests the sync took
    requests: int = 0
    #: a delta did not fit the table the host holds (it missed a change, or restarted):
    #: ``digest`` is of what it holds, and it wants the whole state
    resync: bool = False


class Heartbeat(Message):
    host: str
    worker_id: str
    capabilities: dict[str, Any] = Field(default_factory=dict)
    registering: bool = False
