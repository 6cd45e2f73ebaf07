"""Overlay networks: the forwarding table of one network across hosts, as each host should have it.

virtnet knows every guest MAC on every host, so it writes each host's VXLAN table itself: a
static entry per guest on another host, and broadcast replication to exactly the hosts that
have a port on the network. A change is sent to every host of the network at once (a nudge);
each host reports a digest of the state it applied, and a periodic pass resends the state to
any host whose digest differs, so a lost message delays convergence and never prevents it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from app.messages import OverlayDelta, OverlayHead, OverlayState, SyncOverlay, SyncOverlayDelta
from app.messages.names import SYNC_OVERLAY, SYNC_OVERLAY_DELTA, host_queue
from app.messages.overlay import add_sums, entry_hash
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


def _hosts(ctx: Ctx) -> dict[str, str]:
    """host -> underlay address, of the hosts that said theirs."""
    query = select(Host.name, Host.underlay).where(Host.underlay.is_not(None))
    return {name: underlay for name, underlay in ctx.db.execute(query) if underlay}


@dataclass
class Table:
    """One overlay network's desired state on each of its hosts, from one read of its ports
    (three queries, whatever the number of hosts); each host's digest comes from sums of
    entry hashes, so it costs no table of its own."""

    network: Network
    overlay: dict[str, Any]
    underlay: dict[str, str]
    #: hosts the network is realised on (that have an underlay) -> the digest each confirmed
    acked: dict[str, str | None]
    #: MAC -> the host its guest is on (live ports whose entry is written)
    entries: dict[str, str]
    #: hosts that get the network's broadcasts
    port_hosts: set[str]
    _sums: dict[str, int] = field(default_factory=dict)
    _total: int = 0

    @classmethod
    def read(cls, ctx: Ctx, network: Network) -> Table | None:
        overlay = overlay_of(network)
        if overlay is None or network.live is None:  # live is set before a start is planned
            return None
        underlay = _hosts(ctx)
        members = select(Realisation.host, Realisation.overlay_digest).where(
            Realisation.network_id == network.id
        )
        acked = {h: d for h, d in ctx.db.execute(members) if h in underlay}
        ports = select(Port.mac, Port.host, Port.fdb, Port.migration).where(
            Port.network_id == network.id, Port.state.in_(LIVE_STATES)
        )
        entries: dict[str, str] = {}
        port_hosts: set[str] = set()
        for mac, host, fdb, migration in ctx.db.execute(ports):
            port_hosts.add(host)
            if migration and migration.get("phase") == "plugging":
                port_hosts.add(migration["target"])  # it gets broadcasts before the switch
            if fdb and host in underlay:
                entries[mac] = host
        # the gateway host answers for the network's addresses (DHCP, ARP, routing) even with
        # no guest of its own: it gets broadcasts, and its bridge MAC an entry everywhere else
        gateway: str = overlay.get("gateway_host") or ""
        live = network.live or network.definition
        if gateway in acked and live.get("mac"):
            entries[str(live["mac"]).lower()] = gateway
            port_hosts.add(gateway)
        table = cls(network, overlay, underlay, dict(sorted(acked.items())), entries, port_hosts)
        for mac, host in entries.items():
            share = entry_hash(mac, underlay[host])
            table._sums[host] = table._sums.get(host, 0) + share
            table._total += share
        return table

    @property
    def members(self) -> list[str]:
        return list(self.acked)

    def head(self, host: str) -> OverlayHead:
        live = self.network.live or self.network.definition
        flood = live.get("bridge", {}).get("mac_table_manager", "kernel") != "libvirt"
        underlay = self.underlay
        head = OverlayHead(
            network_id=self.network.id,
            generation=self.network.generation,
            uuid=self.network.uuid,
            name=self.network.name,
            bridge=self.network.bridge,
            vni=self.overlay["vni"],
            port=self.overlay.get("port", 4789),
            local=underlay[host],
            flood=flood,
            peers=sorted({underlay[h] for h in self.port_hosts if h != host and h in underlay}),
            allowed=sorted({underlay[h] for h in self.acked}),
            digest="",
        )
        remote = add_sums(self._total, -self._sums.get(host, 0))
        return head.model_copy(update={"digest": head.digest_with(remote)})

    def digest(self, host: str) -> str:
        return self.head(host).digest

    def remote(self, host: str, macs: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """The host's remote entries (of ``macs`` only, if given), sorted."""
        wanted = self.entries if macs is None else {m: self.entries.get(m) for m in macs}
        return sorted((m, self.underlay[h]) for m, h in wanted.items() if h and h != host)

    def state(self, host: str) -> OverlayState:
        head = self.head(host)
        return OverlayState(**dict(head), remote=self.remote(host))

    def delta(self, host: str, macs: Iterable[str]) -> OverlayDelta:
        head, changed = self.head(host), sorted(set(macs))
        return OverlayDelta(**dict(head), macs=changed, remote=self.remote(host, changed))


def host_states(ctx: Ctx, network: Network) -> dict[str, dict[str, Any]]:
    """The desired overlay state of every host the network is realised on."""
    table = Table.read(ctx, network)
    if table is None:
        return {}
    return {host: table.state(host).wire() for host in table.members}


def nudge(ctx: Ctx, networks: Iterable[Network], changed: dict[int, set[str]] | None = None) -> int:
    """Queue the new desired state to every host of each overlay network whose state it has
    not confirmed; returns messages. With ``changed`` (network id -> MACs whose entries
    changed) a host gets only those entries (a delta) and asks for the whole table if it
    does not fit the one it holds; without, it gets the whole table."""
    sent = 0
    for network in {n.id: n for n in networks}.values():
        if overlay_of(network) is None:
            continue
        ctx.db.flush()
        table = Table.read(ctx, network)
        if table is None:
            continue
        macs = None if changed is None else changed.get(network.id)
        for host, acked in table.acked.items():
            if macs is None:
                if acked == table.digest(host):
                    continue  # this host's table did not change
                state = table.state(host)
                ctx.outbox.add(SYNC_OVERLAY, SyncOverlay(overlay=state), host_queue(host))
            else:
                delta = table.delta(host, macs)
                if acked == delta.digest:
                    continue
                message = SyncOverlayDelta(delta=delta)
                ctx.outbox.add(SYNC_OVERLAY_DELTA, message, host_queue(host))
            sent += 1
    return sent


def nudge_ports(ctx: Ctx, ports: Iterable[Port]) -> int:
    """Tell every host of the ports' networks what changed for these ports' guests."""
    changed: dict[int, set[str]] = {}
    for p in ports:
        if p.network_id is not None:
            changed.setdefault(p.network_id, set()).add(p.mac)
    if not changed:
        return 0
    query = select(Network).where(Network.id.in_(changed), Network.vni.is_not(None))
    return nudge(ctx, ctx.db.scalars(query).all(), changed)


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
    resync: bool = False,
) -> bool:
    """A host says which overlay state it applied; an older run's report is dropped (False).
    A host that could not apply a delta (``resync``) gets the whole state at once.

    One statement: every change brings a report from each host of the network, and the
    control worker records them one after another."""
    stmt = (
        update(Realisation)
        .where(
            Realisation.network_id == network_id,
            Realisation.host == host,
            Network.id == Realisation.network_id,
            Network.generation == generation,
            Network.state != "inactive",
        )
        .values(
            overlay_digest=None if error else digest,
            overlay_error=error,
            remote_entries=remote_entries,
        )
        .returning(Realisation.id)
        .execution_options(synchronize_session=False)
    )
    if ctx.db.execute(stmt).first() is None:
        return False
    network = ctx.db.get(Network, network_id) if resync else None
    table = Table.read(ctx, network) if network is not None else None
    if table is not None and host in table.acked:
        state = table.state(host)
        ctx.outbox.add(SYNC_OVERLAY, SyncOverlay(overlay=state), host_queue(host))
    return True


def out_of_sync(ctx: Ctx, seen: dict[tuple[int, str], tuple[str, float]], grace: float) -> int:
    """Resend the whole desired overlay state to hosts that have not confirmed it for
    ``grace`` s (a delta or its report was lost, or the host failed to apply it).

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
        table = Table.read(ctx, network)
        if table is None:
            continue
        states = dict(
            ctx.db.execute(
                select(Realisation.host, Realisation.state).where(
                    Realisation.network_id == network.id
                )
            ).all()
        )
        for host, acked in table.acked.items():
            if states.get(host) not in ("active", "degraded", "failed"):
                continue
            digest = table.digest(host)
            if acked == digest:
                continue
            key = (network.id, host)
            lagging.add(key)
            digest_seen, since = seen.get(key, ("", now))
            if digest_seen != digest:
                seen[key] = (digest, now)
            elif now - since >= grace:
                state = table.state(host)
                ctx.outbox.add(SYNC_OVERLAY, SyncOverlay(overlay=state), host_queue(host))
                seen[key] = (digest, now)
                sent += 1
    for key in set(seen) - lagging:
        del seen[key]
    return sent


def host_view(ctx: Ctx, network: Network) -> dict[str, dict[str, Any]]:
    """Per host: its underlay address, remote entries written, and whether it is in sync."""
    table = Table.read(ctx, network)
    if table is None:
        return {}
    rows = ctx.db.scalars(select(Realisation).where(Realisation.network_id == network.id))
    out = {}
    for row in rows:
        member = row.host in table.acked
        out[row.host] = {
            "underlay": table.underlay.get(row.host),
            "remote_entries": row.remote_entries,
            "remote_entries_wanted": sum(1 for h in table.entries.values() if h != row.host)
            if member
            else 0,
            "in_sync": member and row.overlay_digest == table.digest(row.host),
            "error": row.overlay_error,
        }
    return out
