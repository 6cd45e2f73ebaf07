"""What the API returns: definitions as written plus a read-only status."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from app.conf.network.model import NetworkDefinition
from app.models import Host, Network, Realisation, Token

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


class OverlayHostView(BaseModel):
    underlay: str | None = None
    remote_entries: int
    remote_entries_wanted: int
    in_sync: bool
    error: str | None = None


class RealisationView(BaseModel):
    host: str
    state: Literal["pending", "active", "degraded", "failed"]
    error: str | None = None
    updated_at: datetime
    #: overlay networks only: this host's VXLAN forwarding table
    overlay: OverlayHostView | None = None


class GatewayView(BaseModel):
    """An overlay network's gateway host: the one carrying its addresses, DHCP and NAT."""

    host: str
    #: its realisation's state, or: inactive (network stopped), missing (not registered, no
    #: underlay, or not running the network yet), down
    state: Literal["inactive", "pending", "active", "degraded", "failed", "missing", "down"]
    reason: str | None = None


class NetworkStatus(BaseModel):
    state: Literal["inactive", "starting", "active", "failed"]
    persistent: bool
    revision: int
    created_at: datetime
    updated_at: datetime
    hosts: list[RealisationView] = []
    #: overlay networks with overlay.gateway_host only
    gateway: GatewayView | None = None
    #: true when the definition shown is a stored one that differs from what is running
    inactive_view: bool = False


class NetworkView(NetworkDefinition):
    model_config = ConfigDict(extra="ignore")
    status: NetworkStatus


def network_view(
    network: Network,
    realisations: list[Realisation],
    *,
    inactive: bool = False,
    overlay: dict[str, dict[str, Any]] | None = None,
    gateway: dict[str, Any] | None = None,
) -> dict[str, Any]:
    document = network.definition if inactive or network.live is None else network.live
    return {
        **document,
        "autostart": network.autostart,
        "status": {
            "state": network.state,
            "persistent": network.persistent,
            "revision": network.revision,
            "created_at": network.created_at,
            "updated_at": network.updated_at,
            "inactive_view": bool(inactive and network.live and network.live != network.definition),
            "gateway": gateway,
            "hosts": [
                {
                    "host": r.host,
                    "state": r.state,
                    "error": r.error,
                    "updated_at": r.updated_at,
                    "overlay": (overlay or {}).get(r.host),
                }
                for r in realisations
            ],
        },
    }


class HostView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    state: Literal["up", "down"]
    kernel: str
    vlan_filtering: bool
    vlan_8021q: bool
    tun: bool
    net_admin: bool
    underlay: str | None = None
    underlay_mtu: int | None = None
    registered_at: datetime
    last_seen: datetime
    #: the host's desired revision (bumped by each change sent to it) and the one it last
    #: reported applied; equal once it has caught up
    desired_revision: int = 0
    applied_revision: int = 0


def host_view(host: Host, up: bool, revisions: tuple[int, int] | None = None) -> dict[str, Any]:
    desired, applied = revisions or (0, 0)
    return {
        "name": host.name,
        "state": "up" if up else "down",
        "kernel": host.kernel,
        "vlan_filtering": host.vlan_filtering,
        "vlan_8021q": host.vlan_8021q,
        "tun": host.tun,
        "net_admin": host.net_admin,
        "underlay": host.underlay,
        "underlay_mtu": host.underlay_mtu,
        "registered_at": host.registered_at,
        "last_seen": host.last_seen,
        "desired_revision": desired,
        "applied_revision": applied,
    }


class TokenView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: str
    created_at: datetime


class NewTokenView(TokenView):
    token: str


def token_view(token: Token) -> dict[str, Any]:
    return TokenView.model_validate(token).model_dump()
