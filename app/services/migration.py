"""Moving a running domain's ports to another host, as libvirt's migration does for FDB entries:

1. plug on the target with the guest's entry withheld (the tap exists, nothing points at it);
2. switch: every host's entries move to the target at once (one nudge to all of them) and the
   target's own static entry goes in;
3. unplug on the source.

The operation reports the switchover: from sending the switch to the last host confirming
the new table.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from app.messages import ApplyPorts, HostPort
from app.messages.names import APPLY_PORTS, host_queue
from app.models import Network, Operation, Port
from app.services import events, locks, operations, overlay, ports
from app.services.context import Ctx
from app.services.domains import get as get_domain
from app.services.errors import Conflict, Invalid
from app.services.port_queries import domain_ports

KIND = "domain.migrate"


def reserved_taps(ctx: Ctx, host: str) -> set[str]:
    """Tap names held on ``host`` by migrations still plugging there."""
    rows = ctx.db.scalars(select(Port.migration).where(Port.migration.is_not(None)))
    return {m["target_tap"] for m in rows if m and m.get("target") == host}


def _free_tap(ctx: Ctx, host: str, taken: set[str]) -> str:
    used = set(ctx.db.scalars(select(Port.tap).where(Port.host == host))) | taken
    return ports.lowest_free_tap(used | reserved_taps(ctx, host))


def _spec(port: Port, *, host_tap: str, fdb: bool, present: bool) -> HostPort:
    return ports.host_port(port, present=present).model_copy(update={"tap": host_tap, "fdb": fdb})


def start(ctx: Ctx, *, name: str, host: str) -> Operation:
    domain = get_domain(ctx, name, lock=True)
    if domain.state not in ("running", "paused"):
        raise Conflict(f"domain {name!r} is {domain.state}; only a running or paused one migrates")
    if host == domain.host:
        raise Invalid(f"domain {name!r} already runs on host {host!r}")
    ports.lock_host(ctx, host)
    port_list = locks.port_list(ctx, domain_ports(ctx, domain))
    busy = [p for p in port_list if p.migration or p.state != "plugged"]
    if busy:
        raise Conflict(
            f"domain {name!r} has interfaces still changing ({', '.join(p.mac for p in busy)}); "
            "wait until they are plugged"
        )
    op = operations.begin(ctx, kind=KIND, target=f"domain/{name}", pending=len(port_list))
    taken: set[str] = set()
    specs: list[HostPort] = []
    for port in port_list:
        tap = _free_tap(ctx, host, taken)
        taken.add(tap)
        port.migration = {
            "op": op.id,
            "phase": "plugging",
            "source": port.host,
            "source_tap": port.tap,
            "target": host,
            "target_tap": tap,
            "ready": False,
        }
        specs.append(_spec(port, host_tap=tap, fdb=False, present=True))
    if specs:
        ctx.outbox.add(APPLY_PORTS, ApplyPorts(ports=specs), host_queue(host))
        overlay.nudge_ports(ctx, port_list)  # the target gets the network's broadcasts
    else:
        _move_domain(ctx, op, host)
        op.result = {"switchover_seconds": 0.0, "source": domain.host, "target": host}
    events.publish(ctx, "domain.migrating", f"domain/{name}", source=domain.host, target=host)
    ctx.commit(conflict="the domain changed at the same time; retry")
    return op


def _move_domain(ctx: Ctx, op: Operation, host: str) -> None:
    from app.models import Domain

    name = op.target.removeprefix("domain/")
    domain = ctx.db.scalar(select(Domain).where(Domain.name == name))
    if domain is not None:
        domain.host = host
        domain.definition = {**domain.definition, "host": host}


def _op_ports(ctx: Ctx, op_id: str) -> list[Port]:
    rows = ctx.db.scalars(select(Port).where(Port.migration.is_not(None)))
    return [p for p in rows if p.migration and p.migration.get("op") == op_id]


def target_reported(ctx: Ctx, port: Port, result: dict[str, Any]) -> None:
    """The target plugged (or failed to plug) a migrating port's tap."""
    m = dict(port.migration or {})
    if m.get("phase") != "plugging" or result.get("tap") != m.get("target_tap"):
        return
    op = ctx.db.get(Operation, m["op"])
    if result["state"] == "failed":
        _abort(ctx, op, f"plugging {m['target_tap']} on {m['target']}: {result.get('error')}")
        return
    if result["state"] != "plugged":
        return
    m["ready"] = True
    port.migration = m
    op_ports = _op_ports(ctx, m["op"])
    if op is not None and all(p.migration and p.migration.get("ready") for p in op_ports):
        _switch(ctx, op, op_ports)


def _abort(ctx: Ctx, op: Operation | None, error: str) -> None:
    if op is None:
        return
    specs: dict[str, list[HostPort]] = {}
    for port in _op_ports(ctx, op.id):
        m = port.migration or {}
        if m.get("phase") == "plugging":
            spec = _spec(port, host_tap=m["target_tap"], fdb=False, present=False)
            specs.setdefault(m["target"], []).append(spec)
            port.migration = None
    for host, batch in specs.items():
        ctx.outbox.add(APPLY_PORTS, ApplyPorts(ports=batch), host_queue(host))
    operations.finish(op, f"migration failed, the domain stays where it was: {error}")


def _switch(ctx: Ctx, op: Operation, op_ports: list[Port]) -> None:
    """Every entry moves at once: the ports now live on the target."""
    now = time.time()
    target = ""
    to_target: list[HostPort] = []
    to_source: dict[str, list[HostPort]] = {}
    for port in op_ports:
        m = dict(port.migration or {})
        target = m["target"]
        port.host, port.tap = m["target"], m["target_tap"]
        port.generation += 1
        m.update(phase="switching", switch_started=now)
        port.migration = m
        to_target.append(ports.host_port(port, present=True))
        gone = _spec(port, host_tap=m["source_tap"], fdb=False, present=False)
        to_source.setdefault(m["source"], []).append(gone)
    ctx.db.flush()
    ctx.outbox.add(APPLY_PORTS, ApplyPorts(ports=to_target), host_queue(target))
    sent = overlay.nudge_ports(ctx, op_ports)
    for host, batch in to_source.items():
        ctx.outbox.add(APPLY_PORTS, ApplyPorts(ports=batch), host_queue(host))
    _move_domain(ctx, op, target)
    if not sent:  # no overlay network: nothing else to wait for
        _finish(ctx, op, op_ports, now)


def _finish(ctx: Ctx, op: Operation, op_ports: list[Port], started: float) -> None:
    first = op_ports[0].migration or {}
    op.result = {
        "switchover_seconds": round(time.time() - started, 4),
        "source": first.get("source"),
        "target": first.get("target"),
    }
    for port in op_ports:
        port.migration = None
    operations.finish(op)
    events.publish(ctx, "domain.migrated", op.target, **op.result)


def after_overlay_report(ctx: Ctx, *, network_id: int) -> None:
    """Finish switching migrations whose networks' hosts all have the new table."""
    running = ctx.db.scalars(
        select(Operation).where(Operation.kind == KIND, Operation.state == "running")
    ).all()
    for op in running:
        op_ports = _op_ports(ctx, op.id)
        if not op_ports or not all(
            (p.migration or {}).get("phase") == "switching" for p in op_ports
        ):
            continue
        if network_id not in {p.network_id for p in op_ports}:
            continue
        networks = {p.network_id: ctx.db.get(Network, p.network_id) for p in op_ports}
        views = [overlay.host_view(ctx, n) for n in networks.values() if n is not None]
        if all(h["in_sync"] for view in views for h in view.values()):
            started = float((op_ports[0].migration or {}).get("switch_started", time.time()))
            _finish(ctx, op, op_ports, started)


def expire(ctx: Ctx, op: Operation, seconds: str) -> Operation:
    """A migration past the operation deadline: still plugging on the target, it is called
    off (the domain stays where it was); already switched, it ends with the switch done."""
    locks.domain(ctx, op.target.removeprefix("domain/"))
    op_ports = locks.port_list(ctx, _op_ports(ctx, op.id))
    locks.operation(ctx, op.id)
    if op.state != "running":
        return op
    phases = {(p.migration or {}).get("phase") for p in op_ports}
    targets = sorted({str((p.migration or {}).get("target")) for p in op_ports})
    note = f"host {', '.join(targets) or '?'} did not answer within {seconds} s"
    if "switching" in phases:
        started = float((op_ports[0].migration or {}).get("switch_started", time.time()))
        _finish(ctx, op, op_ports, started)
        operations.finish(op, f"the switch is done, but not every host confirmed it: {note}")
    else:
        _abort(ctx, op, note)
    return op
