"""Domains: define, start (allocate and plug every interface), stop, suspend, resume, hot-plug."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from app.conf.common import compact, random_mac
from app.conf.domain.model import REALISED_TYPES, DomainDefinition, InterfaceDef
from app.conf.port.model import Owner, PortRequest
from app.models import Domain, Operation, Port
from app.services import events, locks, operations, overlay, port_lifecycle, ports
from app.services.context import Ctx
from app.services.domain_state import set_state
from app.services.errors import Conflict, Invalid, NotFound, require_revision
from app.services.port_queries import domain_ports


def get(ctx: Ctx, name: str, *, lock: bool = False) -> Domain:
    """The domain; ``lock``: for a write, which holds it (and so its ports) until it ends."""
    if lock:
        domain = locks.domain(ctx, name)
    else:
        domain = ctx.db.scalar(select(Domain).where(Domain.name == name))
    if domain is None:
        raise NotFound(f"domain {name!r} does not exist")
    return domain


def listing(ctx: Ctx, *, state: str | None = None) -> list[Domain]:
    query = select(Domain).order_by(Domain.name)
    if state is not None:
        query = query.where(Domain.state == state)
    return list(ctx.db.scalars(query))


def _complete(definition: DomainDefinition, existing: Domain | None) -> dict[str, Any]:
    d = definition.model_copy(deep=True)
    if existing is not None:
        if d.uuid is not None and str(d.uuid) != existing.uuid:
            raise Conflict(f"domain {d.name!r} already exists with uuid {existing.uuid}")
        d.uuid = uuidlib.UUID(existing.uuid)
    d.uuid = d.uuid or uuidlib.uuid4()
    for interface in d.interfaces:
        interface.mac = interface.mac or random_mac()
    return compact(d.model_dump(mode="json"))


def define(ctx: Ctx, *, definition: DomainDefinition) -> Domain:
    if ctx.db.scalar(select(Domain).where(Domain.name == definition.name)) is not None:
        raise Conflict(f"a domain named {definition.name!r} already exists; PUT updates it")
    doc = _complete(definition, None)
    if ctx.db.scalar(select(Domain).where(Domain.uuid == doc["uuid"])) is not None:
        raise Conflict(f"a domain with uuid {doc['uuid']} already exists")
    domain = Domain(name=doc["name"], uuid=doc["uuid"], host=doc["host"], definition=doc)
    ctx.db.add(domain)
    events.publish(ctx, "domain.defined", f"domain/{domain.name}", uuid=domain.uuid)
    ctx.commit(conflict="a domain with this name or uuid was defined at the same time")
    return domain


def update(ctx: Ctx, *, name: str, definition: DomainDefinition, if_match: int | None) -> Domain:
    domain = get(ctx, name, lock=True)
    require_revision(f"domain {name!r}", domain.revision, if_match)
    if definition.name != name:
        raise Invalid(f"the body names domain {definition.name!r} but the URL {name!r}")
    if domain.state != "shut_off":
        raise Conflict(
            f"domain {name!r} is {domain.state}; stop it to redefine it, or "
            "hot-plug interfaces with /interfaces"
        )
    domain.definition = _complete(definition, domain)
    domain.host = domain.definition["host"]
    domain.revision += 1
    ctx.commit(conflict="a domain with this name or uuid was defined at the same time")
    return domain


def _port_request(domain: Domain, interface: InterfaceDef) -> PortRequest:
    return PortRequest(
        owner=Owner(name=domain.name, uuid=uuidlib.UUID(domain.uuid)),
        host=domain.host,
        mac=interface.mac,
        portgroup=interface.source.portgroup,
        mtu=interface.mtu,
        vlan=interface.vlan,  # refused by ports.allocate: no host kernel can tag VLANs
        bandwidth=interface.bandwidth,
        multi_queue=(interface.queues or 1) > 1,
        port_isolated=interface.port_isolated,
    )


def _guest(domain: Domain, interface: InterfaceDef, guest_ifname: str | None) -> dict[str, Any]:
    """The guest side of a port: a container's namespace and interface name, a VM's queues."""
    if domain.definition.get("type") != "lxc":
        # a VM's QEMU may still hold this interface's tap from before: the host reuses it
        return {"reuse_held": True, **({"queues": interface.queues} if interface.queues else {})}
    netns = domain.definition.get("netns") or domain.name
    return {"netns": netns, "guest_ifname": interface.guest or guest_ifname}


def _guest_names(interfaces: list[InterfaceDef], taken: set[str]) -> list[str]:
    """eth0, eth1, ... in interface order, skipping names given explicitly or in use."""
    taken = taken | {i.guest for i in interfaces if i.guest}
    names, n = [], 0
    for interface in interfaces:
        if interface.guest:
            names.append(interface.guest)
            continue
        while f"eth{n}" in taken:
            n += 1
        names.append(f"eth{n}")
        taken.add(f"eth{n}")
    return names


def _realisable(interface: InterfaceDef) -> None:
    """Refuse, before anything is reserved, an interface virtnet cannot plug yet."""
    if interface.type not in REALISED_TYPES:
        raise Conflict(
            f"virtnet cannot realise an interface of type {interface.type!r} yet (MAC "
            f"{interface.mac}); it plugs types 'network' and 'bridge'"
        )
    if interface.virtualport is not None:
        kind = interface.virtualport.type or "untyped"
        raise Conflict(
            f"virtnet does not realise virtual port profiles ({kind} <virtualport> on MAC "
            f"{interface.mac}) yet; remove it to start"
        )


def _allocate(
    ctx: Ctx, domain: Domain, interface: InterfaceDef, guest_ifname: str | None = None
) -> Port:
    _realisable(interface)
    network = None
    if interface.type == "network":
        assert interface.source.network is not None
        network = ports.network_for_ports(ctx, interface.source.network)
    return ports.allocate(
        ctx,
        network=network,
        request=_port_request(domain, interface),
        bridge=interface.source.bridge,
        tap=interface.target,
        domain_id=domain.id,
        guest=_guest(domain, interface, guest_ifname),
    )


def _act(ctx: Ctx, domain: Domain, kind: str, port_list: list[Port], present: bool) -> Operation:
    op = operations.begin(ctx, kind=kind, target=f"domain/{domain.name}", pending=len(port_list))
    for port in port_list:
        operations.take_over(ctx, port, op)
    ports.send(ctx, port_list, present=present)
    return op


def start(ctx: Ctx, *, name: str) -> Operation:
    domain = get(ctx, name, lock=True)
    if domain.state != "shut_off":
        raise Conflict(f"domain {name!r} is {domain.state}, not shut_off")
    definition = DomainDefinition.model_validate(domain.definition)
    for interface in definition.interfaces:  # every refusal before any reservation
        _realisable(interface)
    names = _guest_names(definition.interfaces, set())
    port_list = [
        _allocate(ctx, domain, i, name)
        for i, name in zip(definition.interfaces, names, strict=True)
    ]
    op = _act(ctx, domain, "domain.start", port_list, present=True)
    set_state(ctx, domain, "starting" if port_list else "running")
    ctx.commit(conflict=port_lifecycle.race("a MAC address or tap name"))
    return op


def stop(ctx: Ctx, *, name: str, force: bool = False) -> Operation:
    """Unplug every interface. Without ``force`` the host leaves them all if a hypervisor
    holds one of the taps open, and the operation ends "refused" naming it."""
    domain = get(ctx, name, lock=True)
    if domain.state not in ("running", "paused"):
        raise Conflict(f"domain {name!r} is {domain.state}; only a running or paused one stops")
    live = locks.port_list(ctx, domain_ports(ctx, domain))
    # the kind remembers a paused domain, which a refused stop leaves paused
    kind = "domain.stop.paused" if domain.state == "paused" else "domain.stop"
    op = ports.unplug(ctx, live, kind=kind, target=f"domain/{name}", keep_busy=not force)
    set_state(ctx, domain, "stopping" if live else "shut_off")
    ctx.commit(conflict=port_lifecycle.race("the domain"))
    return op


def _set_fdb(ctx: Ctx, name: str, *, paused: bool) -> Operation:
    domain = get(ctx, name, lock=True)
    want = "running" if paused else "paused"
    if domain.state != want:
        raise Conflict(f"domain {name!r} is {domain.state}, not {want}")
    live = locks.port_list(ctx, domain_ports(ctx, domain))
    managed = [p for p in live if p.mac_table_manager == "libvirt"]
    for port in managed:
        port.fdb = not paused
        port.generation += 1
    op = _act(ctx, domain, "domain.suspend" if paused else "domain.resume", managed, True)
    overlay.nudge_ports(ctx, managed)  # a paused guest's entries leave the other hosts too
    if not managed:
        set_state(ctx, domain, "paused" if paused else "running")
    ctx.commit(conflict=port_lifecycle.race("the domain"))
    return op


def suspend(ctx: Ctx, *, name: str) -> Operation:
    """Pause: each guest MAC's static FDB entry is taken out, as libvirt does."""
    return _set_fdb(ctx, name, paused=True)


def resume(ctx: Ctx, *, name: str) -> Operation:
    return _set_fdb(ctx, name, paused=False)


def attach(ctx: Ctx, *, name: str, interface: InterfaceDef) -> Operation:
    domain = get(ctx, name, lock=True)
    if domain.state not in ("shut_off", "running", "paused"):
        raise Conflict(f"domain {name!r} is {domain.state}; wait until it settles")
    interface = interface.model_copy(update={"mac": interface.mac or random_mac()})
    existing = [i.get("mac") for i in domain.definition.get("interfaces", [])]
    if interface.mac in existing:
        raise Conflict(f"domain {name!r} already has an interface with MAC {interface.mac}")
    doc = compact(interface.model_dump(mode="json"))
    try:  # the domain's own rules (guest names for containers only, distinct ones)
        DomainDefinition.model_validate(
            {**domain.definition, "interfaces": [*domain.definition.get("interfaces", []), doc]}
        )
    except ValidationError as exc:
        raise Invalid(
            f"interface: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None
    domain.definition = {
        **domain.definition,
        "interfaces": [*domain.definition.get("interfaces", []), doc],
    }
    domain.revision += 1
    port_list = []
    if domain.state != "shut_off":
        in_use = {p.spec.get("guest_ifname") for p in domain_ports(ctx, domain)} - {None}
        (name,) = _guest_names([interface], {n for n in in_use if n})
        port_list = [_allocate(ctx, domain, interface, name)]
    op = _act(ctx, domain, "domain.attach", port_list, present=True)
    ctx.commit(conflict=port_lifecycle.race(f"MAC {interface.mac} or the tap name"))
    return op


def detach(ctx: Ctx, *, name: str, mac: str, force: bool = False) -> Operation:
    """Hot-unplug; an interface whose port is plugged leaves the definition once its host
    removed it (a tap a hypervisor holds open stays, without ``force``)."""
    domain = get(ctx, name, lock=True)
    mac = mac.lower()
    interfaces = domain.definition.get("interfaces", [])
    if mac not in [i.get("mac") for i in interfaces]:
        raise NotFound(f"domain {name!r} has no interface with MAC {mac}")
    live = [p for p in locks.port_list(ctx, domain_ports(ctx, domain)) if p.mac == mac]
    if not live:
        domain.definition = {
            **domain.definition,
            "interfaces": [i for i in interfaces if i.get("mac") != mac],
        }
    domain.revision += 1
    op = ports.unplug(ctx, live, kind="domain.detach", target=f"domain/{name}", keep_busy=not force)
    ctx.commit(conflict=port_lifecycle.race("the interface"))
    return op


def undefine(ctx: Ctx, *, name: str, force: bool) -> Operation | None:
    domain = get(ctx, name, lock=True)
    live = locks.port_list(ctx, domain_ports(ctx, domain))
    if domain.state != "shut_off" and not force:
        raise Conflict(
            f"domain {name!r} is {domain.state}; stop it first or delete with ?force=true"
        )
    op = ports.unplug(ctx, live, kind="domain.undefine", target=f"domain/{name}") if live else None
    events.publish(ctx, "domain.undefined", f"domain/{name}", uuid=domain.uuid)
    ctx.db.delete(domain)
    ctx.commit(conflict=port_lifecycle.race("the domain"))
    return op
