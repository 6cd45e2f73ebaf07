"""Network lifecycle with libvirt's semantics: define, create, start, stop, undefine, update."""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import Any

from sqlalchemy import func, select, text

from app.conf.common import compact, random_mac
from app.conf.network.model import NetworkDefinition
from app.conf.network.validate import (
    definition_problems,
    overlap_problems,
    overlay_mtu_problems,
    subnets,
    unrealised_features,
    vlans,
)
from app.models import Host, Network
from app.services import events, locks, operations, port_queries, realisation
from app.services.context import Ctx
from app.services.errors import Conflict, Invalid, NotFound, require_revision
from app.services.vlan import vlan_refusal

MAX_BRIDGE_INDEX = 4096
CREATED_BRIDGE_MODES = frozenset({"none", "nat", "route", "open"})
log = logging.getLogger("virtnet.networks")


def get(ctx: Ctx, name: str, *, lock: bool = False) -> Network:
    """The network named ``name``; ``lock`` for a write: the network's row is locked before
    anything else it owns (its ports, realisations), so every writer takes locks in the same
    order and none deadlocks another. FOR NO KEY UPDATE still lets ports reference it."""
    query = select(Network).where(Network.name == name)
    if lock:
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    network = ctx.db.scalar(query)
    if network is None:
        raise NotFound(f"network {name!r} does not exist")
    return network


def listing(
    ctx: Ctx,
    *,
    state: str | None,
    autostart: bool | None,
    persistent: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Network], int]:
    query = select(Network)
    if state == "active":
        query = query.where(Network.state != "inactive")
    elif state is not None:
        query = query.where(Network.state == state)
    if autostart is not None:
        query = query.where(Network.autostart == autostart)
    if persistent is not None:
        query = query.where(Network.persistent == persistent)
    total = ctx.db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = ctx.db.scalars(query.order_by(Network.name).limit(limit).offset(offset)).all()
    return list(rows), total


def _other_subnets(ctx: Ctx, exclude_id: int | None) -> list[tuple[str, list[Any]]]:
    import ipaddress

    rows = ctx.db.execute(select(Network.id, Network.name, Network.subnets)).all()
    return [
        (name, [ipaddress.ip_network(s) for s in text.split(",") if s])
        for nid, name, text in rows
        if nid != exclude_id
    ]


def _lowest_free_bridge(ctx: Ctx) -> str:
    """The lowest virbrN no network has. Allocations take turns (a transaction-scoped
    advisory lock on PostgreSQL; SQLite serialises writers anyway), so concurrent defines
    get distinct names; a clash with a bridge named explicitly at the same moment is caught
    by the unique index, and the request runs again (app.services.retry)."""
    if ctx.db.get_bind().dialect.name == "postgresql":
        ctx.db.execute(text("SELECT pg_advisory_xact_lock(hashtext('virtnet.bridge-names'))"))
    used = set(ctx.db.scalars(select(Network.bridge).where(Network.bridge.like("virbr%"))))
    for index in range(MAX_BRIDGE_INDEX):
        if f"virbr{index}" not in used:
            return f"virbr{index}"
    raise Conflict("no free virbrN bridge name is left; name the bridge explicitly")


def _complete(
    ctx: Ctx, definition: NetworkDefinition, existing: Network | None
) -> NetworkDefinition:
    """Check a definition and fill in what libvirt fills in: uuid, bridge name, MAC."""
    problems = definition_problems(definition)
    if problems:
        raise Invalid("the network definition is not valid", problems=problems)
    problems = _overlay_mtu(ctx, definition)
    if problems:
        raise Invalid("the network's MTU does not fit the hosts' underlay", problems=problems)
    overlaps = overlap_problems(definition, _other_subnets(ctx, existing.id if existing else None))
    if overlaps:
        raise Conflict(overlaps[0].msg, problems=overlaps)
    d = definition.model_copy(deep=True)
    own_bridge = d.forward.mode in CREATED_BRIDGE_MODES
    if existing is not None:
        if d.uuid is not None and str(d.uuid) != existing.uuid:
            raise Conflict(f"network {d.name!r} already exists with uuid {existing.uuid}")
        d.uuid = uuidlib.UUID(existing.uuid)
        if own_bridge and d.bridge.name is None and existing.bridge:
            d.bridge.name = existing.bridge
        if own_bridge and d.mac is None:
            d.mac = existing.definition.get("mac")
    if d.uuid is None:
        d.uuid = uuidlib.uuid4()
    # like libvirt's define: only networks whose bridge virtnet creates get a name and a MAC
    chosen = own_bridge and d.bridge.name is None
    if chosen:
        d.bridge.name = _lowest_free_bridge(ctx)
    if own_bridge and d.mac is None:
        d.mac = random_mac()
    _check_unique(ctx, d, existing, bridge_chosen=chosen)
    return d


def _overlay_mtu(ctx: Ctx, definition: NetworkDefinition) -> list[Any]:
    if definition.overlay is None:
        return []
    rows = ctx.db.execute(
        select(Host.name, Host.underlay, Host.underlay_mtu).where(Host.underlay.is_not(None))
    ).all()
    return overlay_mtu_problems(definition, [(r[0], r[1] or "", r[2]) for r in rows])


def _vni(d: NetworkDefinition | dict[str, Any] | None) -> int | None:
    if isinstance(d, dict):
        return (d.get("overlay") or {}).get("vni")
    return d.overlay.vni if d is not None and d.overlay is not None else None


def _check_unique(
    ctx: Ctx, d: NetworkDefinition, existing: Network | None, *, bridge_chosen: bool = False
) -> None:
    """Refuse values other networks have. A bridge name virtnet chose is not the client's
    fault: it is left to the unique index, and a clash runs the request again."""
    own_id = existing.id if existing else None
    bridge = None if bridge_chosen else d.bridge.name
    checks = [
        (Network.name, d.name, f"a network named {d.name!r} already exists"),
        (Network.uuid, str(d.uuid), f"a network with uuid {d.uuid} already exists"),
        (Network.bridge, bridge, f"bridge {d.bridge.name!r} is used by network {{other}}"),
        (Network.vni, _vni(d), f"VNI {_vni(d)} is used by overlay network {{other}}"),
    ]
    for column, value, message in checks:
        if value is None:
            continue
        other = ctx.db.scalar(select(Network).where(column == value, Network.id != own_id))
        if other is not None:
            raise Conflict(message.format(other=repr(other.name)))


def _document(d: NetworkDefinition) -> dict[str, Any]:
    return compact(d.model_dump(mode="json"))


def _commit(ctx: Ctx) -> None:
    ctx.commit(
        conflict="another network with the same name, uuid, bridge or VNI was defined at the "
        "same time"
    )


def define(ctx: Ctx, *, definition: NetworkDefinition, start: bool = False) -> Network:
    existing = ctx.db.scalar(select(Network).where(Network.name == definition.name))
    if existing is not None:
        raise Conflict(f"a network named {definition.name!r} already exists; PUT updates it")
    d = _complete(ctx, definition, None)
    if start and d.autostart:
        raise Invalid("a transient network (start=true) cannot autostart")
    doc = _document(d)
    network = Network(
        name=d.name,
        uuid=str(d.uuid),
        bridge=d.bridge.name,
        persistent=not start,
        autostart=d.autostart,
        definition=doc,
        subnets=",".join(str(s) for s in subnets(d)),
        vni=_vni(d),
    )
    ctx.db.add(network)
    ctx.db.flush()
    if start:
        _start(ctx, network)
    else:
        events.publish(ctx, "network.defined", f"network/{network.name}", uuid=network.uuid)
    _commit(ctx)
    return network


def update(ctx: Ctx, *, name: str, definition: NetworkDefinition, if_match: int | None) -> Network:
    network = get(ctx, name, lock=True)
    require_revision(f"network {name!r}", network.revision, if_match)
    if definition.name != name:
        raise Invalid(
            f"the body names network {definition.name!r} but the URL {name!r}; "
            "networks cannot be renamed"
        )
    d = _complete(ctx, definition, network)
    if network.state != "inactive" and _vni(d) != _vni(network.live):
        raise Conflict(
            f"network {name!r} is active: its overlay (VNI) changes only while it is stopped"
        )
    network.definition = _document(d)
    network.vni = _vni(d)
    network.bridge = d.bridge.name if network.state == "inactive" else network.bridge
    network.subnets = ",".join(str(s) for s in subnets(d))
    network.autostart = d.autostart
    # libvirt: defining over a running transient network makes it persistent
    network.persistent = True
    network.revision += 1
    events.publish(ctx, "network.defined", f"network/{name}", uuid=network.uuid)
    _commit(ctx)
    return network


def set_autostart(ctx: Ctx, *, name: str, enabled: bool) -> Network:
    network = get(ctx, name, lock=True)
    if not network.persistent:
        raise Conflict(f"network {name!r} is transient; define it to make it autostart")
    network.autostart = enabled
    network.definition = {**network.definition, "autostart": enabled}
    network.revision += 1
    _commit(ctx)
    return network


def _start(ctx: Ctx, network: Network) -> None:
    definition = NetworkDefinition.model_validate(network.definition)
    missing = unrealised_features(definition)
    reasons = []
    if missing:
        reasons.append(f"virtnet does not realise {'; '.join(missing)} on hosts yet")
    if vlans(definition):
        hosts = list(ctx.db.scalars(select(Host).order_by(Host.name)))
        reasons.append(vlan_refusal(hosts, f"VLAN tagging ({', '.join(vlans(definition))})"))
    if reasons:
        raise Conflict(
            f"network {network.name!r} cannot start: {'. '.join(reasons)}. The definition is "
            "stored unchanged; remove these parts to start it now."
        )
    definition = NetworkDefinition.model_validate(network.definition)
    problems = _overlay_mtu(ctx, definition)
    if problems:
        raise Conflict(f"network {network.name!r} cannot start: {problems[0].msg}")
    network.live = network.definition
    network.generation += 1
    network.revision += 1
    realisation.plan_start(ctx, network)
    events.publish(
        ctx, "network.started", f"network/{network.name}", uuid=network.uuid, bridge=network.bridge
    )


def start(ctx: Ctx, *, name: str) -> Network:
    network = get(ctx, name, lock=True)
    if network.state != "inactive":
        raise Conflict(f"network {name!r} is already active")
    _start(ctx, network)
    _commit(ctx)
    return network


def stop(ctx: Ctx, *, name: str, force: bool = False) -> Network | None:
    """Stop a network; a transient one is gone afterwards (returns None then)."""
    network = get(ctx, name, lock=True)
    if network.state == "inactive":
        raise Conflict(f"network {name!r} is not active")
    ports = realisation.ports_in_use(ctx, network)
    if ports and not force:
        raise Conflict(
            f"network {name!r} still has {len(ports)} port(s): {', '.join(ports)}; "
            "delete them first or stop with ?force=true",
        )
    realisation.plan_stop(ctx, network)
    network.generation += 1
    network.revision += 1
    network.live = None
    events.publish(ctx, "network.stopped", f"network/{name}", uuid=network.uuid)
    if not network.persistent:
        _delete(ctx, network)
        _commit(ctx)
        return None
    _commit(ctx)
    return network


def _delete(ctx: Ctx, network: Network) -> None:
    """The ports still being unplugged go with the row (a cascade): nothing waits for them."""
    operations.forget(ctx, locks.port_list(ctx, port_queries.network_ports(ctx, network.id)))
    ctx.db.delete(network)


def undefine(ctx: Ctx, *, name: str) -> Network | None:
    """Remove the persistent definition; an active network lives on as a transient one."""
    network = get(ctx, name, lock=True)
    if not network.persistent:
        raise Conflict(f"network {name!r} is transient; stop it to remove it")
    events.publish(ctx, "network.undefined", f"network/{name}", uuid=network.uuid)
    if network.state == "inactive":
        _delete(ctx, network)
        _commit(ctx)
        return None
    network.persistent = False
    network.autostart = False
    network.revision += 1
    _commit(ctx)
    return network


def autostart_all(ctx: Ctx) -> list[str]:
    """Start every inactive autostart network, as libvirtd does when it starts."""
    started = []
    query = select(Network).where(Network.autostart.is_(True), Network.state == "inactive")
    for network in ctx.db.scalars(query.order_by(Network.name)).all():
        try:
            _start(ctx, network)
        except Conflict as exc:
            ctx.db.rollback()
            log.warning("autostart of network %s skipped: %s", network.name, exc.detail)
            continue
        _commit(ctx)
        started.append(network.name)
    return started
