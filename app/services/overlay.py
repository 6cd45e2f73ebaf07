"""Overlay networks: the forwarding table of one network across hosts, as each host should have it.

virtnet knows every guest MAC on every host, so it writes each host's VXLAN table itself: a
static entry per guest on another host, and broadcast replication to exactly the hosts that
have a port on the network. A change is sent to every host of the network at once (a nudge);
each host reports a digest of the state it applied, and a periodic pass resends the state to
any host whose digest differs, so a lost message delays convergence and never prevents it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from app.messages import OverlayState, SyncOverlay
from app.messages.names import SYNC_OVERLAY, host_queue
from app.models import Host, Network, Port, Realisation
from app.services.context import Ctx

LIVE_STATES = ("plugging", "plugged")
#: bytes VXLAN adds to each frame on an IPv4 / IPv6 underlay
OVERHEAD = {4: 50, 6: 70}
DEFAULT_UNDERLAY_MTU = 1500


def overlay_of(network: Network) -> dict[str, Any] | None:
    live = network.live or network.definition
    overlay: dict[str, Any] | None = live.get("overlay")
    return overlay


def overhead(address: str | None) -> int:
    return OVERHEAD[6] if address and ":" in address else OVERHEAD[4]


def eligible(host: Host, network: Network) -> bool:
    """An overlay network is realised only on hosts that said their underlay address."""
    return overlay_of(network) is None or bool(host.underlay)


def _hosts(ctx: Ctx) -> dict[str, Host]:
    return {h.name: h for h in ctx.db.scalars(select(Host).where(Host.underlay.is_not(None)))}


def _live_ports(ctx: Ctx, network_id: int) -> list[Port]:
    query = select(Port).where(Port.network_id == network_id, Port.state.in_(LIVE_STATES))
    return list(ctx.db.scalars(query))


def _members(ctx: Ctx, network_id: int) -> list[str]:
    query = select(Realisation.host).where(Realisation.network_id == network_id)
    return sorted(ctx.db.scalars(query))


def _sync(state: dict[str, Any]) -> SyncOverlay:
    return SyncOverlay(overlay=OverlayState.read(state))


def digest(state: dict[str, Any]) -> str:
    body = {k: v for k, v in state.items() if k not in ("digest", "generation")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def host_states(ctx: Ctx, network: Network) -> dict[str, dict[str, Any]]:
    """The desired overlay state of every host the network is realised on."""
    overlay = overlay_of(network)
    if overlay is None or network.live is None:  # live is set before a start is planned
        return {}
    hosts = _hosts(ctx)
    members = [h for h in _members(ctx, network.id) if h in hosts]
    ports = _live_ports(ctx, network.id)
    port_hosts: set[str] = set()
    for p in ports:
        port_hosts.add(p.host)
        if p.migration and p.migration.get("phase") == "plugging":
            port_hosts.add(p.migration["target"])  # it gets broadcasts before the switch
    live = network.live or network.definition
    flood = live.get("bridge", {}).get("mac_table_manager", "kernel") != "libvirt"
    # the gateway host answers for the network's addresses (DHCP, ARP, routing) even with no
    # guest of its own: it gets broadcasts, and its bridge MAC has an entry everywhere else
    gateway: str = overlay.get("gateway_host") or ""
    at = hosts[gateway].underlay if gateway in members else None
    gateway_mac = [(str(live["mac"]).lower(), at)] if at and live.get("mac") else []
    if gateway_mac:
        port_hosts.add(gateway)
    allowed = sorted({u for h in members if (u := hosts[h].underlay) is not None})
    states = {}
    for name in members:
        me = hosts[name]
        peers = sorted(
            {u for h in port_hosts if h != name and h in hosts and (u := hosts[h].underlay)}
        )
        remote = sorted(
            [
                [p.mac, hosts[p.host].underlay]
                for p in ports
                if p.host != name and p.host in hosts and p.fdb
            ]
            + [list(entry) for entry in gateway_mac if name != gateway]
        )
        state = {
            "network_id": network.id,
            "generation": network.generation,
            "uuid": network.uuid,
            "name": network.name,
            "bridge": network.bridge,
            "vni": overlay["vni"],
            "port": overlay.get("port", 4789),
            "local": me.underlay,
            "flood": flood,
            "peers": peers,
            "remote": remote,
            "allowed": allowed,
        }
        state["digest"] = digest(state)
        states[name] = state
    return states


def nudge(ctx: Ctx, networks: Iterable[Network]) -> int:
    """Queue the new desired state to every host of each overlay network; returns messages."""
    sent = 0
    for network in {n.id: n for n in networks}.values():
        if overlay_of(network) is None:
            continue
        ctx.db.flush()
        query = select(Realisation.host, Realisation.overlay_digest).where(
            Realisation.network_id == network.id
        )
        acked = {host: applied for host, applied in ctx.db.execute(query).all()}
        for host, state in host_states(ctx, network).items():
            if acked.get(host) == state["digest"]:
                continue  # this host's table did not change
            ctx.outbox.add(SYNC_OVERLAY, _sync(state), host_queue(host))
            sent += 1
    return sent


def nudge_ports(ctx: Ctx, ports: Iterable[Port]) -> int:
    ids = {p.network_id for p in ports if p.network_id is not None}
    if not ids:
        return 0
    query = select(Network).where(Network.id.in_(ids), Network.vni.is_not(None))
    return nudge(ctx, ctx.db.scalars(query).all())


def nudge_all(ctx: Ctx) -> int:
    query = select(Network).where(Network.vni.is_not(None), Network.state != "inactive")
    return nudge(ctx, ctx.db.scalars(query).all())


def record_report(
    ctx: Ctx,
    *,
    host: str,
    network_id: int,
    generation: int,
    digest: str | None,
    remote_entries: int,
    error: str | None,
) -> Realisation | None:
    """A host says which overlay state it applied; an older run's report is dropped."""
    network = ctx.db.get(Network, network_id)
    if network is None or network.generation != generation or network.state == "inactive":
        return None
    row = ctx.db.scalar(
        select(Realisation).where(Realisation.network_id == network_id, Realisation.host == host)
    )
    if row is None:
        return None
    row.overlay_digest = None if error else digest
    row.overlay_error = error
    row.remote_entries = remote_entries
    return row


def out_of_sync(ctx: Ctx, seen: dict[tuple[int, str], tuple[str, float]], grace: float) -> int:
    """Resend the desired overlay state to hosts that have not confirmed it for ``grace`` s.

    ``seen`` (kept by the caller between passes) remembers since when each host has lagged
    behind which desired state: a state that just changed has its nudge in flight, and
    resending it at once would only double the work of a busy fleet.
    """
    import time

    now = time.monotonic()
    query = select(Network).where(Network.vni.is_not(None), Network.state != "inactive")
    sent = 0
    lagging: set[tuple[int, str]] = set()
    for network in ctx.db.scalars(query).all():
        rows = {
            r.host: r
            for r in ctx.db.scalars(select(Realisation).where(Realisation.network_id == network.id))
        }
        for host, state in host_states(ctx, network).items():
            row = rows.get(host)
            if row is None or row.state not in ("active", "degraded", "failed"):
                continue
            if row.overlay_digest == state["digest"]:
                continue
            key = (network.id, host)
            lagging.add(key)
            digest_seen, since = seen.get(key, ("", now))
            if digest_seen != state["digest"]:
                seen[key] = (state["digest"], now)
            elif now - since >= grace:
                ctx.outbox.add(SYNC_OVERLAY, _sync(state), host_queue(host))
                seen[key] = (state["digest"], now)
                sent += 1
    for key in set(seen) - lagging:
        del seen[key]
    return sent


def host_view(ctx: Ctx, network: Network) -> dict[str, dict[str, Any]]:
    """Per host: its underlay address, remote entries written, and whether it is in sync."""
    if overlay_of(network) is None:
        return {}
    hosts = _hosts(ctx)
    states = host_states(ctx, network)
    rows = ctx.db.scalars(select(Realisation).where(Realisation.network_id == network.id))
    out = {}
    for row in rows:
        state = states.get(row.host)
        out[row.host] = {
            "underlay": hosts[row.host].underlay if row.host in hosts else None,
            "remote_entries": row.remote_entries,
            "remote_entries_wanted": len(state["remote"]) if state else 0,
            "in_sync": state is not None and row.overlay_digest == state["digest"],
            "error": row.overlay_error,
        }
    return out
