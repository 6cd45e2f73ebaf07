"""Changing a defined interface; on a running domain, its bandwidth and isolation apply live.

libvirt's virDomainUpdateDeviceFlags on a live <interface>: bandwidth (and, here, <port
isolated>) change in place, on the same tap, after networkCheckBandwidth accepted the new
floor; anything else about a plugged interface needs a detach and an attach.
"""

from __future__ import annotations

from app.conf.common import compact
from app.conf.domain.model import InterfaceDef
from app.conf.network.model import NetworkDefinition
from app.models import Domain, Operation
from app.services import locks, operations, port_lifecycle, port_qos, ports
from app.services.context import Ctx
from app.services.errors import Conflict, Invalid, NotFound
from app.services.port_queries import domain_ports

LIVE_FIELDS = frozenset({"bandwidth", "port_isolated"})


def update_interface(
    ctx: Ctx, *, domain: Domain, mac: str, interface: InterfaceDef
) -> Operation | None:
    """Replace the interface with MAC ``mac``; returns the operation applying it, if live."""
    mac = mac.lower()
    domain = locks.domain(ctx, domain.name) or domain
    stored = domain.definition.get("interfaces", [])
    old = next((i for i in stored if i.get("mac") == mac), None)
    if old is None:
        raise NotFound(f"domain {domain.name!r} has no interface with MAC {mac}")
    if interface.mac not in (None, mac):
        raise Invalid(f"the body's MAC {interface.mac} is not the interface's {mac}")
    new = compact(interface.model_copy(update={"mac": mac}).model_dump(mode="json"))
    live = [p for p in locks.port_list(ctx, domain_ports(ctx, domain)) if p.mac == mac]
    op = None
    if live:
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)} - LIVE_FIELDS
        if changed:
            raise Conflict(
                f"domain {domain.name!r} is {domain.state}: only bandwidth and port_isolated "
                f"of a plugged interface change live, not {', '.join(sorted(changed))}; "
                "detach and attach it instead"
            )
        port = live[0]
        ports.lock_host(ctx, port.host)  # floors and class ids of one host take turns
        network_def = None
        pg = None
        if port.network_id is not None:
            network = ports.network_for_ports(ctx, interface.source.network or "")
            network_def = NetworkDefinition.model_validate(network.live or network.definition)
            pg = ports._portgroup(network_def, interface.source.portgroup)
            bandwidth = port_qos.merged_bandwidth(interface.bandwidth, pg, network_def)
            port_qos.check_floor(
                ctx,
                network_id=network.id,
                live=network_def,
                host=port.host,
                mac=mac,
                new=bandwidth,
                port_id=port.id,
            )
        else:
            bandwidth = interface.bandwidth
        isolated = port_qos.merged_isolated(interface.port_isolated, pg, network_def)
        port.spec = {
            **port.spec,
            **port_qos.qos_spec(
                ctx,
                network_id=port.network_id,
                host=port.host,
                bandwidth=bandwidth,
                isolated=isolated,
                old=port.spec,
                port_id=port.id,
            ),
        }
        port.generation += 1
        op = operations.begin(ctx, kind="domain.update", target=f"domain/{domain.name}", pending=1)
        operations.take_over(ctx, port, op)
        ports.send(ctx, [port], present=True)
    domain.definition = {
        **domain.definition,
        "interfaces": [new if i.get("mac") == mac else i for i in stored],
    }
    domain.revision += 1
    ctx.commit(conflict=port_lifecycle.race("the interface"))
    return op
