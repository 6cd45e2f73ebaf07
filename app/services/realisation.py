"""Which hosts a network is realised on, and the desired state sent to each."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from sqlalchemy import delete, select

from app.conf.network.dnsmasq import needs_dnsmasq, render
from app.conf.network.firewall import firewall_spec, needs_ip_forwarding
from app.conf.network.model import NetworkDefinition
from app.messages import NetworkSpec, OverlayState, RealiseNetwork, ReconcileHost, RemoveNetwork
from app.messages.names import REALISE_NETWORK, RECONCILE_HOST, REMOVE_NETWORK, host_queue
from app.models import Host, Network, Realisation
from app.services import events, intent, locks, overlay, port_queries, ports
from app.services.context import Ctx

FINAL_STATES = frozenset({"active", "degraded", "failed"})
REALISED = frozenset({"active", "degraded"})


def network_state(host_states: list[str]) -> str:
    """A started network's state from its hosts' realisations (README, "Network state").

    ``starting`` while no host has it yet (none up) or any host has not answered; ``active``
    once every host answered and at least one realised it; ``failed`` once every host answered
    and none could. Never ``active`` while no host realised the network.
    """
    if not host_states or any(s not in FINAL_STATES for s in host_states):
        return "starting"
    return "active" if any(s in REALISED for s in host_states) else "failed"


def host_spec(network: Network, host: str) -> NetworkSpec:
    """The whole desired state of one network on ``host``; the host looks nothing up.

    An overlay network with a gateway host has its addresses, dnsmasq and forwarding rules
    on that host only: the others get the L2 part (bridge, VXLAN) and a bridge MAC of their
    own, so that the network's MAC, the gateway's, is on one host of the segment."""
    live = network.live or network.definition
    bridge = live.get("bridge", {})
    l2_only = gateway_of(network) not in (None, host)
    spec = {
        "network_id": network.id,
        "generation": network.generation,
        "uuid": network.uuid,
        "name": network.name,
        "mode": live.get("forward", {}).get("mode"),  # a null: the default (app.messages)
        "bridge": bridge.get("name", network.bridge),
        "stp": bridge.get("stp"),
        "delay": bridge.get("delay"),
        "mac_table_manager": bridge.get("mac_table_manager"),
        "mac": host_mac(network, host) if l2_only else live.get("mac"),
        "mtu": live.get("mtu"),
        "bandwidth": live.get("bandwidth"),
        "vni": (overlay.overlay_of(network) or {}).get("vni"),
    }
    definition = NetworkDefinition.model_validate(live)
    ip_spec = _ip_spec(definition, spec["bridge"], network.uuid, l2_only=l2_only)
    return NetworkSpec.read({**spec, **ip_spec})


def gateway_of(network: Network) -> str | None:
    """The host that carries an overlay network's addresses, DHCP and NAT, if it names one."""
    return (overlay.overlay_of(network) or {}).get("gateway_host")


def gateway_status(ctx: Ctx, network: Network) -> dict[str, Any] | None:
    """Where an overlay network's gateway host stands (GET /v1/networks/{name}).

    A gateway host that is not registered, has no underlay address or is down does not
    stop the network: the other hosts carry its L2, and the gateway's part (addresses,
    DHCP, NAT) is realised when the host comes (back), as the resync gives it its state."""
    gateway = gateway_of(network)
    if gateway is None:
        return None
    if network.state == "inactive":
        return {"host": gateway, "state": "inactive", "reason": None}
    host = ctx.db.get(Host, gateway)
    row = ctx.db.scalar(
        select(Realisation).where(Realisation.network_id == network.id, Realisation.host == gateway)
    )
    part = "the network's addresses, DHCP and NAT wait for it; the other hosts carry its L2"
    if host is None:
        return {
            "host": gateway,
            "state": "missing",
            "reason": f"host {gateway} never registered: {part}",
        }
    if not host.underlay:
        return {
            "host": gateway,
            "state": "missing",
            "reason": f"host {gateway} has no "
            f"underlay address (virtnet worker --underlay ADDRESS): {part}",
        }
    if not ctx.host_is_up(host.last_seen):
        return {"host": gateway, "state": "down", "reason": f"host {gateway} is down: {part}"}
    if row is None:
        return {
            "host": gateway,
            "state": "missing",
            "reason": f"host {gateway} does not run the network yet: {part}",
        }
    return {"host": gateway, "state": row.state, "reason": row.error}


def host_mac(network: Network, host: str) -> str:
    """The bridge MAC of an overlay host that is not the gateway: its own, stable, and never
    the network's (which is the gateway's, on the same segment)."""
    digest = hashlib.sha256(f"{network.uuid}/{host}".encode()).digest()
    return "52:54:00" + "".join(f":{b:02x}" for b in digest[:3])


def _ip_spec(d: NetworkDefinition, bridge: str, uuid: str, *, l2_only: bool) -> dict[str, Any]:
    """Addresses, dnsmasq files and forwarding rules of a network whose bridge virtnet owns;
    none (so any left from before go) on an overlay host that is not the gateway."""
    if d.forward.mode == "bridge" or l2_only:
        return {"ips": [], "dnsmasq": None, "firewall": None, "ip_forwarding": []}
    return {
        "ips": [str(ip.interface()) for ip in d.ips],
        "dnsmasq": dataclasses.asdict(render(d, bridge)) if needs_dnsmasq(d) else None,
        "firewall": firewall_spec(d, uuid, bridge),
        "ip_forwarding": sorted(needs_ip_forwarding(d)),
    }


def _with_overlay(spec: NetworkSpec, states: dict[str, dict[str, Any]], host: str) -> NetworkSpec:
    if host in states:
        return spec.model_copy(update={"overlay": OverlayState.read(states[host])})
    return spec


def up_hosts(ctx: Ctx) -> list[Host]:
    hosts = ctx.db.scalars(select(Host).order_by(Host.name)).all()
    return [h for h in hosts if ctx.host_is_up(h.last_seen)]


def plan_start(ctx: Ctx, network: Network) -> None:
    ctx.db.execute(delete(Realisation).where(Realisation.network_id == network.id))
    targets = [h for h in up_hosts(ctx) if overlay.eligible(h, network)]
    for host in targets:
        ctx.db.add(
            Realisation(network_id=network.id, host=host.name, generation=network.generation)
        )
    ctx.db.flush()
    states = overlay.host_states(ctx, network) if network.vni is not None else {}
    for host in targets:
        spec = _with_overlay(host_spec(network, host.name), states, host.name)
        ctx.outbox.add(REALISE_NETWORK, RealiseNetwork(network=spec), host_queue(host.name))
    network.state = "starting"  # with no host up, it waits for one (network_state)


def plan_refresh(ctx: Ctx, network: Network) -> None:
    """The running definition changed in place: each host running it gets the new spec."""
    rows = ctx.db.scalars(select(Realisation).where(Realisation.network_id == network.id)).all()
    for row in rows:
        row.generation = network.generation
        if gateway_of(network) not in (None, row.host):
            row.leases = None  # its dnsmasq stops: the gateway (moved) holds the leases
    ctx.db.flush()
    # an overlay's gateway host may have moved: each host's table changes with it
    states = overlay.host_states(ctx, network) if network.vni is not None else {}
    for row in rows:
        spec = _with_overlay(host_spec(network, row.host), states, row.host)
        ctx.outbox.add(REALISE_NETWORK, RealiseNetwork(network=spec), host_queue(row.host))


def plan_stop(ctx: Ctx, network: Network) -> None:
    attached = locks.port_list(ctx, port_queries.network_ports(ctx, network.id))
    if attached:  # only with ?force: the taps go before their bridge
        ports.unplug(
            ctx,
            attached,
            kind="network.stop",
            target=f"network/{network.name}",
            reason=f"cancelled by force stop of network {network.name}",
        )
    rows = ctx.db.scalars(select(Realisation).where(Realisation.network_id == network.id)).all()
    for row in rows:
        ctx.outbox.add(
            REMOVE_NETWORK,
            RemoveNetwork(network=host_spec(network, row.host)),
            host_queue(row.host),
        )
        ctx.db.delete(row)
    network.state = "inactive"


def ports_in_use(ctx: Ctx, network: Network) -> list[str]:
    return port_queries.port_labels(ctx, network.id)


def realisations(ctx: Ctx, network_id: int) -> list[Realisation]:
    query = select(Realisation).where(Realisation.network_id == network_id)
    return list(ctx.db.scalars(query.order_by(Realisation.host)))


def record_report(
    ctx: Ctx,
    *,
    host: str,
    network_id: int,
    generation: int,
    state: str,
    error: str | None,
    error_code: str | None = None,
) -> None:
    """A host says how realising one network went; reports about an older run are dropped."""
    # the network's row first, as every writer of a network and its rows locks them
    network = ctx.db.get(Network, network_id, with_for_update={"key_share": True})
    if network is None or network.generation != generation or network.state == "inactive":
        return
    row = ctx.db.scalar(
        select(Realisation).where(Realisation.network_id == network_id, Realisation.host == host)
    )
    if row is None:
        row = Realisation(network_id=network_id, host=host, generation=generation)
        ctx.db.add(row)
    if (row.state, row.error) != (state, error):
        events.publish(
            ctx,
            "network.realised",
            f"network/{network.name}",
            host=host,
            state=state,
            error=error,
            error_code=error_code,
        )
    row.state, row.error = state, error
    ctx.db.flush()
    network.state = network_state([r.state for r in realisations(ctx, network_id)])
    ctx.db.commit()


def record_leases(ctx: Ctx, *, host: str, network_id: int, leases: list[dict[str, Any]]) -> None:
    """A host's dnsmasq lease file changed: keep what it holds for the dhcp-leases view."""
    row = ctx.db.scalar(
        select(Realisation).where(Realisation.network_id == network_id, Realisation.host == host)
    )
    if row is None:
        return  # the network stopped meanwhile
    row.leases = leases
    ctx.db.commit()


def leases(ctx: Ctx, network: Network, mac: str | None = None) -> list[dict[str, Any]]:
    """Every host's leases for the network (libvirt's net-dhcp-leases), by expiry."""
    out = [
        {**lease, "host": row.host}
        for row in realisations(ctx, network.id)
        for lease in row.leases or []
        if mac is None or (lease.get("mac") or "").lower() == mac.lower()
    ]
    return sorted(out, key=lambda lease: (lease["host"], lease.get("ip", "")))


def plan_host_up(ctx: Ctx, host: str) -> None:
    """A host (re)joined: give it every active network and let it drop what is no longer
    wanted; the others learn its underlay address (firewall) and, from its ports, its
    overlay entries."""
    plan_full(ctx, host, comeback=True)
    overlay.nudge_all(ctx)


def plan_full(ctx: Ctx, host: str, *, comeback: bool) -> None:
    """Send ``host`` its whole desired state, as one full bundle (app.services.intent).

    ``comeback``: the host (re)joined, so it gets realisation rows for the networks it
    misses and what it had before is forgotten; otherwise (the periodic resend) nothing but
    the host's revision is written."""
    intent.begin_full(ctx, host, resend=not comeback)
    networks = ctx.db.scalars(select(Network).where(Network.state != "inactive")).all()
    specs = []
    me = ctx.db.get(Host, host)
    for network in networks:
        if me is not None and not overlay.eligible(me, network):
            continue
        if comeback:
            row = ctx.db.scalar(
                select(Realisation).where(
                    Realisation.network_id == network.id, Realisation.host == host
                )
            )
            if row is not None:
                row.overlay_digest = None  # what it had before is unknown until it reports
            else:
                ctx.db.add(
                    Realisation(network_id=network.id, host=host, generation=network.generation)
                )
                network.state = "starting"
        specs.append(network)
    ctx.db.flush()
    network_specs = [
        _with_overlay(host_spec(n, host), overlay.host_states(ctx, n) if n.vni else {}, host)
        for n in specs
    ]
    # a failed port is not plugged again (a new request asks for that): the host removes
    # any device of it as a leftover, and its tap name may belong to a newer port already
    port_specs = [
        ports.host_port(p, present=p.state not in ("unplugging", "released"))
        for p in port_queries.host_ports(ctx, host)
        if p.state != "failed"
    ]
    ctx.outbox.add(
        RECONCILE_HOST, ReconcileHost(networks=network_specs, ports=port_specs), host_queue(host)
    )
