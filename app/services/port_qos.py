"""A port's isolation and bandwidth as libvirt's network driver decides them.

- networkAllocatePort: the interface's own <bandwidth> wins, else its portgroup's; the
  network's <bandwidth> is the bridge's, never copied to ports. <port isolated> comes from
  the interface, else its portgroup (a virtnet extension), else the network.
- networkCheckBandwidth: a floor needs a network of forward mode none/nat/route/open with an
  inbound limit, and the floors of the network's ports (here: on one host, whose bridge
  enforces the limit) may not exceed its inbound peak, or average without a peak.
- networkNextClassID: the lowest free id from 3 (1:1 and 1:2 are the network's classes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.conf.network.model import Bandwidth, NetworkDefinition
from app.models import Port
from app.services.context import Ctx
from app.services.errors import Conflict

FLOOR_MODES = frozenset({"none", "nat", "route", "open"})
FIRST_CLASS_ID = 3


def merged_bandwidth(
    own: Bandwidth | None, portgroup: Any, network: NetworkDefinition | None
) -> Bandwidth | None:
    if own is not None or network is None:
        return own
    return portgroup.bandwidth if portgroup is not None else None


def merged_isolated(own: bool | None, portgroup: Any, network: NetworkDefinition | None) -> bool:
    for value in (own, getattr(portgroup, "port_isolated", None)):
        if value is not None:
            return value
    return bool(network.port_isolated) if network is not None else False


def floor_of(bandwidth: dict[str, Any] | Bandwidth | None) -> int:
    if bandwidth is None:
        return 0
    if isinstance(bandwidth, Bandwidth):
        return (bandwidth.inbound.floor or 0) if bandwidth.inbound else 0
    return int(((bandwidth.get("inbound") or {}).get("floor")) or 0)


def _host_ports(ctx: Ctx, network_id: int, host: str, exclude: str | None) -> list[Port]:
    query = select(Port).where(Port.network_id == network_id, Port.host == host)
    return [p for p in ctx.db.scalars(query) if p.id != exclude and p.state != "released"]


def check_floor(
    ctx: Ctx,
    *,
    network_id: int,
    live: NetworkDefinition,
    host: str,
    mac: str,
    new: Bandwidth | None,
    port_id: str | None = None,
) -> None:
    """libvirt's networkCheckBandwidth, with its messages; raises Conflict."""
    floor = floor_of(new)
    if not floor:
        return
    if live.forward.mode not in FLOOR_MODES:
        raise Conflict(
            f"Invalid use of 'floor' on interface with MAC address {mac} - 'floor' is only "
            "supported for interface type 'network' with forward type 'nat', 'route', 'open' "
            "or none"
        )
    net_in = live.bandwidth.inbound if live.bandwidth else None
    if net_in is None or not net_in.average:
        raise Conflict(
            f"Invalid use of 'floor' on interface with MAC address {mac} - network "
            f"'{live.name}' has no inbound QoS set"
        )
    others = _host_ports(ctx, network_id, host, port_id)
    total = floor + sum(floor_of(p.spec.get("bandwidth")) for p in others)
    limit, what = (net_in.peak, "peak") if net_in.peak else (net_in.average, "average")
    if total > limit:
        raise Conflict(
            f"Cannot plug '{mac}' interface into '{live.bridge.name}' because new combined "
            f"inbound floor={total} would overcommit {what}={limit} on network '{live.name}'"
        )


def next_class_id(ctx: Ctx, network_id: int, host: str, port_id: str | None = None) -> int:
    used = {p.spec.get("class_id") for p in _host_ports(ctx, network_id, host, port_id)}
    class_id = FIRST_CLASS_ID
    while class_id in used:
        class_id += 1
    return class_id


def qos_spec(
    ctx: Ctx,
    *,
    network_id: int | None,
    host: str,
    bandwidth: Bandwidth | None,
    isolated: bool,
    old: dict[str, Any] | None = None,
    port_id: str | None = None,
) -> dict[str, Any]:
    """The part of a port's desired state about isolation and bandwidth."""
    old = old or {}
    spec: dict[str, Any] = {
        "isolated": isolated,
        "bandwidth": bandwidth.model_dump(exclude_none=True) if bandwidth else None,
        "qos": bool(bandwidth) or bool(old.get("qos")),
        "class_id": old.get("class_id"),
    }
    if floor_of(bandwidth) and spec["class_id"] is None and network_id is not None:
        spec["class_id"] = next_class_id(ctx, network_id, host, port_id)
    return spec
