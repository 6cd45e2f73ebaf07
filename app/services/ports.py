"""Port allocation (libvirt's networkAllocatePort) and the desired state sent to a host."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, and_, func, or_, select

from app.conf.common import random_mac
from app.conf.errors import Problem
from app.conf.network.model import NetworkDefinition
from app.conf.port.model import PortRequest
from app.messages import ApplyPorts, HostPort
from app.messages.names import APPLY_PORTS, host_queue
from app.models import Host, Network, Operation, Port
from app.services import locks, operations, overlay, port_qos, port_room
from app.services.context import Ctx
from app.services.errors import Conflict, Invalid, NotFound
from app.services.vlan import vlan_refusal

MAX_PORTS_PER_BRIDGE = 1023  # the kernel's limit: the 1024th gets "Exchange full"
TAP_PREFIX = "vnet"
#: ports with no device on their host, whose tap names are free (models.LIVE_TAP)
GONE = ("failed", "released")


def lock_host(ctx: Ctx, name: str) -> Host:
    """Make allocations on one host take turns (so tap names stay unique), and check it is up.

    The turn is a transaction-scoped advisory lock, not a lock on the host's row: the row is
    what heartbeats update, and a heartbeat queued behind a burst of allocations would make a
    busy host look down. SQLite serialises writers anyway.

    On PostgreSQL the lock is taken by the statement that reads the host (one round trip):
    that row may be read a moment before the lock is granted, which is fine, as only the
    ports read after it must be current.
    """
    if ctx.db.get_bind().dialect.name == "postgresql":
        lock = func.pg_advisory_xact_lock(func.hashtext(f"virtnet.host.{name}"))
        query = select(Host, lock).where(Host.name == name)
        row = ctx.db.execute(query.execution_options(populate_existing=True)).first()
        host = row[0] if row is not None else None
    else:
        host = ctx.db.get(Host, name, populate_existing=True)
    if host is None:
        raise NotFound(f"host {name!r} has never registered; start 'virtnet worker' there")
    if not ctx.host_is_up(host.last_seen):
        raise Conflict(f"host {name!r} is down (last seen {host.last_seen.isoformat()})")
    return host


@dataclass
class Room:
    """What one bulk allocation has read already: each host is locked and read once, and
    the ports it adds are counted here instead of read back (one query per host, not per
    port). Built by ``allocate`` on a host's first port; only for one transaction."""

    hosts: dict[str, Host] = field(default_factory=dict)
    used: dict[str, set[str]] = field(default_factory=dict)
    per_bridge: Counter[tuple[str, str]] = field(default_factory=Counter)
    macs: dict[str, tuple[str, str]] = field(default_factory=dict)  # on the network
    next_tap: dict[str, int] = field(default_factory=dict)


def lowest_free_tap(used: set[str], start: int = 0) -> str:
    index = start
    while f"{TAP_PREFIX}{index}" in used:
        index += 1
    return f"{TAP_PREFIX}{index}"


def _portgroup(definition: NetworkDefinition, name: str | None) -> Any:
    if name is None:
        return next((pg for pg in definition.portgroups if pg.default), None)
    for pg in definition.portgroups:
        if pg.name == name:
            return pg
    message = f"network {definition.name!r} has no portgroup {name!r}"
    raise Invalid(message, problems=[Problem(("portgroup",), message)])


def _mac_used(network: Network, mac: str, port_id: str, owner: str) -> Conflict:
    return Conflict(
        f"MAC {mac} is already used on network {network.name!r} by port {port_id} (owner {owner!r})"
    )


def _bridge_full(host: str, bridge: str) -> Conflict:
    return Conflict(
        f"bridge {bridge!r} on host {host!r} already has {MAX_PORTS_PER_BRIDGE} ports, "
        "the most a Linux bridge takes"
    )


def _check_room(
    ctx: Ctx,
    *,
    host: str,
    bridge: str,
    network: Network | None,
    mac: str,
    tap: str | None,
    room: Room | None = None,
) -> str:
    """Every per-host and per-network rule in one query; returns the tap name to use."""
    if room is not None:
        return _check_room_bulk(ctx, room, host=host, bridge=bridge, network=network, mac=mac)
    if ctx.db.get_bind().dialect.name == "postgresql":
        return _check_room_indexed(ctx, host=host, bridge=bridge, network=network, mac=mac, tap=tap)
    query = select(
        Port.host,
        Port.tap,
        Port.bridge,
        Port.network_id,
        Port.mac,
        Port.id,
        Port.owner_name,
        Port.state,
        Port.migration,
    )
    # a migration to ``host`` holds a tap name there (migration.reserved_taps)
    wanted = [Port.host == host, Port.migration.is_not(None)]
    if network is not None:
        wanted.append(and_(Port.network_id == network.id, Port.mac == mac))
    rows = ctx.db.execute(query.where(or_(*wanted))).all()
    for row in rows:
        if network is not None and row.network_id == network.id and row.mac == mac:
            raise _mac_used(network, mac, row.id, row.owner_name)
    # a failed port has no device (its host rolled the plug back): its name is free again
    on_host = [row for row in rows if row.host == host and row.state not in GONE]
    if sum(row.bridge == bridge for row in on_host) >= MAX_PORTS_PER_BRIDGE:
        raise _bridge_full(host, bridge)
    reserved = {m["target_tap"] for row in rows if (m := row.migration) and m.get("target") == host}
    used = {row.tap for row in on_host} | reserved
    if tap is not None and tap in used:
        raise Conflict(f"tap {tap!r} is already used on host {host!r}")
    return tap or lowest_free_tap(used)


def _check_room_indexed(
    ctx: Ctx, *, host: str, bridge: str, network: Network | None, mac: str, tap: str | None
) -> str:
    """``_check_room``'s rules answered by PostgreSQL from its indexes (port_room)."""
    network_id = network.id if network is not None else None
    found = port_room.room(ctx, host=host, bridge=bridge, network_id=network_id, mac=mac, tap=tap)
    if network is not None and found.mac_port is not None:
        raise _mac_used(network, mac, found.mac_port, found.mac_owner or "")
    if found.on_bridge >= MAX_PORTS_PER_BRIDGE:
        raise _bridge_full(host, bridge)
    if tap is not None and found.tap_taken:
        raise Conflict(f"tap {tap!r} is already used on host {host!r}")
    return tap or found.free_tap


def _check_room_bulk(
    ctx: Ctx, room: Room, *, host: str, bridge: str, network: Network | None, mac: str
) -> str:
    """``_check_room``'s rules against what ``room`` read (once per host) and added since."""
    if host not in room.used:
        query = select(Port.host, Port.tap, Port.bridge, Port.network_id, Port.mac, Port.id)
        query = query.add_columns(Port.owner_name)
        if network is not None:
            query = query.where(or_(Port.host == host, Port.network_id == network.id))
        else:
            query = query.where(Port.host == host)
        from app.services.migration import reserved_taps

        room.used[host] = reserved_taps(ctx, host)
        for row in ctx.db.execute(query):
            if network is not None and row.network_id == network.id:
                room.macs.setdefault(row.mac, (row.id, row.owner_name))
            if row.host == host:
                room.used[host].add(row.tap)
                room.per_bridge[host, row.bridge] += 1
    if network is not None and mac in room.macs:
        raise _mac_used(network, mac, *room.macs[mac])
    if room.per_bridge[host, bridge] >= MAX_PORTS_PER_BRIDGE:
        raise _bridge_full(host, bridge)
    tap = lowest_free_tap(room.used[host], room.next_tap.get(host, 0))
    room.next_tap[host] = int(tap.removeprefix(TAP_PREFIX)) + 1
    room.used[host].add(tap)
    room.per_bridge[host, bridge] += 1
    return tap


def network_for_ports(ctx: Ctx, name: str) -> Network:
    """The active network ports are added to; it cannot stop until this transaction ends."""
    network = locks.network(ctx, name, share=True)
    if network is None:
        raise NotFound(f"network {name!r} does not exist")
    if network.state == "inactive":
        raise Conflict(f"network {name!r} is not active; start it first")
    return network


def allocate(
    ctx: Ctx,
    *,
    network: Network | None,
    request: PortRequest,
    bridge: str | None = None,
    tap: str | None = None,
    domain_id: int | None = None,
    guest: dict[str, Any] | None = None,
    room: Room | None = None,
) -> Port:
    """Reserve a port (tap name, MAC) in the open transaction; nothing is sent yet.

    ``guest`` is what the guest side needs beyond a tap: a container's namespace and
    interface name (a veth pair then), a VM's queue count. ``room``: a bulk allocation's
    cache (its caller checked the ids, and adds each port's MAC to it)."""
    if room is None:
        host = lock_host(ctx, request.host)
    elif request.host in room.hosts:
        host = room.hosts[request.host]
    else:
        host = room.hosts[request.host] = lock_host(ctx, request.host)
    plug_type = "bridge"  # a domain's <interface type='bridge'>
    mtm, mtu, vlan, portgroup = "kernel", request.mtu, request.vlan, None
    live, pg = None, None
    if network is not None:
        live = NetworkDefinition.model_validate(network.live or network.definition)
        bridge = live.bridge.name
        mtm = live.bridge.mac_table_manager or "kernel"
        # libvirt's networkAllocatePort: a <forward mode='bridge'/> network with a <bridge
        # name> hands out a plain bridge; the bridges a network makes are type 'network'
        plug_type = "bridge" if live.forward.mode == "bridge" and bridge else "network"
        pg = _portgroup(live, request.portgroup)
        portgroup = pg.name if pg else None
        vlan = vlan or (pg.vlan if pg else None) or live.vlan
        mtu = mtu or live.mtu
    if vlan is not None:
        raise Conflict(vlan_refusal([host], "VLAN tagging (vlan) of this port"))
    bandwidth = port_qos.merged_bandwidth(request.bandwidth, pg, live)
    isolated = port_qos.merged_isolated(request.port_isolated, pg, live)
    assert bridge is not None
    mac = request.mac or random_mac()
    if network is not None and live is not None:
        port_qos.check_floor(
            ctx, network_id=network.id, live=live, host=request.host, mac=mac, new=bandwidth
        )
    tap = _check_room(
        ctx, host=request.host, bridge=bridge, network=network, mac=mac, tap=tap, room=room
    )
    port_id = str(request.id or uuid.uuid4())
    if room is not None:
        room.macs[mac] = (port_id, request.owner.name)
    elif request.id is not None and ctx.db.get(Port, port_id) is not None:
        raise Conflict(f"a port with id {port_id} already exists")
    port = Port(
        id=port_id,
        network_id=network.id if network else None,
        domain_id=domain_id,
        host=request.host,
        owner_name=request.owner.name,
        owner_uuid=str(request.owner.uuid),
        mac=mac,
        tap=tap,
        bridge=bridge,
        mac_table_manager=mtm,
        portgroup=portgroup,
        spec={
            "mtu": mtu,
            "owner_uid": request.owner_uid,
            "owner_gid": request.owner_gid,
            "vnet_hdr": request.vnet_hdr,
            "multi_queue": request.multi_queue,
            "plug_type": plug_type,
            **port_qos.qos_spec(
                ctx,
                network_id=network.id if network else None,
                host=request.host,
                bandwidth=bandwidth,
                isolated=isolated,
            ),
            **(guest or {}),
        },
        state="plugging",
        generation=1,
        fdb=True,
    )
    ctx.db.add(port)  # flushed by the next query or the commit: one round trip fewer
    return port


def host_port(port: Port | Row[Any], *, present: bool = True) -> HostPort:
    """The whole desired state of one port on its host (the spec's bookkeeping stays here);
    of a row or of a row's columns (port_queries.host_ports)."""
    return HostPort.read(
        {
            **port.spec,
            "port_id": port.id,
            "owner_uuid": port.owner_uuid,
            "generation": port.generation,
            "present": present,
            "tap": port.tap,
            "bridge": port.bridge,
            "guest_mac": port.mac,
            "mac_table_manager": port.mac_table_manager,
            "fdb": port.fdb,
        }
    )


def send(ctx: Ctx, ports: list[Port], *, present: bool) -> None:
    """Queue the desired state of ``ports`` to their hosts, one task per host."""
    by_host: dict[str, list[HostPort]] = {}
    for port in ports:
        by_host.setdefault(port.host, []).append(host_port(port, present=present))
    for host, specs in by_host.items():
        ctx.outbox.add(APPLY_PORTS, ApplyPorts(ports=specs), host_queue(host))


def unplug(
    ctx: Ctx,
    port_list: list[Port],
    *,
    kind: str,
    target: str,
    keep_busy: bool = False,
    reason: str | None = None,
    network: Network | None = None,
) -> Operation:
    """Start unplugging ``port_list``; each row is released when its host confirms.

    ``keep_busy``: the host leaves every port alone if one of them is a tap a process holds
    open, and the operation ends "refused" naming it (a stop or unplug without force).
    ``reason``: what the operations these ports were waiting for end with (by default,
    superseded by this one). The caller holds the ports' locks (``locks.port_list``);
    ``network``: the one network of all ``port_list``, locked by the caller (a network
    without a VNI then costs no look-up for the overlay)."""
    op = operations.begin(ctx, kind=kind, target=target, pending=len(port_list))
    for port in port_list:
        port.spec = {**port.spec, "keep_busy": keep_busy}
        if port.state != "failed":  # a failed one stays so (its tap name is not taken back)
            port.state = "unplugging"
        port.generation += 1
        operations.take_over(ctx, port, op, reason=reason)
    send(ctx, port_list, present=False)
    if network is None or network.vni is not None:
        overlay.nudge_ports(ctx, port_list)  # other hosts drop their entries before the tap goes
    return op


def get(ctx: Ctx, network: Network, port_id: str, *, lock: bool = False) -> Port:
    port = locks.ports(ctx, [port_id]).get(port_id) if lock else ctx.db.get(Port, port_id)
    if port is None or port.network_id != network.id:
        raise NotFound(f"network {network.name!r} has no port {port_id!r}")
    return port
