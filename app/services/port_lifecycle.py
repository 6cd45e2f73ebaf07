"""Ports over their life: create and plug, unplug and release, and what hosts report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from app.conf.port.model import PortRequest
from app.models import Domain, Network, Operation, Port
from app.services import (
    domain_state,
    events,
    locks,
    operations,
    overlay,
    ports,
)
from app.services.context import Ctx
from app.services.errors import Conflict

#: key in ``Port.spec``: the code of the host error in ``Port.error`` (HostErrorCode)
ERROR_CODE = "error_code"


def race(what: str) -> str:
    return f"{what} was taken by a request made at the same time; retry"


def create(ctx: Ctx, *, network_name: str, request: PortRequest) -> tuple[Port, Operation]:
    network = ports.network_for_ports(ctx, network_name)
    port = ports.allocate(ctx, network=network, request=request)
    op = operations.begin(ctx, kind="port.plug", target=f"port/{port.id}", pending=1)
    port.operation_id = op.id
    ports.send(ctx, [port], present=True)
    ctx.commit(conflict=race(f"MAC {port.mac} or tap {port.tap}"))
    return port, op


def remove(ctx: Ctx, *, network_name: str, port_id: str) -> Operation:
    network = ports.network_for_ports(ctx, network_name)
    port = ports.get(ctx, network, port_id, lock=True)
    if port.domain_id is not None:
        raise Conflict(f"port {port_id} belongs to a domain; detach the interface instead")
    op = ports.unplug(ctx, [port], kind="port.unplug", target=f"port/{port.id}", network=network)
    ctx.commit(conflict=race("the port"))
    return op


@dataclass
class Reported:
    """What ``_lock_reported`` locked: the ports (and every other port of their operations),
    those operations, and the ids of the networks with a VNI among the ports' networks.
    Holding the objects keeps them in the session's identity map: later look-ups of them
    cost no query (and no autoflush)."""

    ports: dict[str, Port]
    operations: dict[str, Operation]
    overlay_networks: set[int]


def _lock_reported(ctx: Ctx, ids: set[str]) -> Reported:
    """Lock what a report may change, in the one lock order: the ports' domains, the ports and
    every other port of the operations waiting for them (an operation that ends releases all
    of its ports), then those operations. The ports an operation waits for only ever leave it,
    so the set read before locking covers them; a second round catches a port that moved to a
    new operation meanwhile. One query per round finds what to lock (ports, operations,
    domains, and whether a port's network has a VNI), before anything is locked."""
    if len(ids) == 1 and (lone := locks.lone_port(ctx, next(iter(ids)))) is not None:
        port, op, vni = lone
        overlay = {port.network_id} if vni is not None and port.network_id is not None else set()
        return Reported({port.id: port}, {op.id: op}, overlay)
    wanted, by_id = set(ids), dict[str, Port]()
    overlay_networks: set[int] = set()
    for _ in range(3):
        sibling = (
            select(Port.id)
            .where(
                Port.operation_id.in_(
                    select(Port.operation_id).where(
                        Port.id.in_(wanted), Port.operation_id.is_not(None)
                    )
                )
            )
            .scalar_subquery()
        )
        query = (
            select(Port.id, Port.operation_id, Port.domain_id, Port.network_id, Network.vni)
            .outerjoin(Network, Network.id == Port.network_id)
            .where(or_(Port.id.in_(wanted), Port.id.in_(sibling)))
        )
        rows = ctx.db.execute(query).all()
        op_ids = {r.operation_id for r in rows if r.id in wanted} - {None}
        wanted |= {r.id for r in rows}
        overlay_networks |= {r.network_id for r in rows if r.vni is not None}
        locks.domains(ctx, [r.domain_id for r in rows if r.domain_id is not None])
        by_id.update(locks.ports(ctx, wanted - set(by_id)))
        locked_ops = {p.operation_id for p in by_id.values() if p.id in ids} - {None}
        if locked_ops <= op_ids:
            break
    op_ids = {p.operation_id for p in by_id.values() if p.operation_id}
    return Reported(by_id, locks.operations(ctx, op_ids), overlay_networks)


def record(ctx: Ctx, *, host: str, results: list[dict[str, Any]]) -> None:
    """A host applied ports; advance each port and the operations waiting for them. (The
    control worker runs it again if a concurrent writer made it fail: retry.run.)

    On the hot path of every ``?wait``: it reads only what it locks, and writes everything
    in the one flush of its commit. A large report (a reconcile's, of every port) first
    leaves out the ports it would not change (``_changing``), which are then neither locked
    nor loaded."""
    stale: list[Port] = []
    moved: list[Port] = []
    touched: dict[str, Operation] = {}
    refused: dict[str, list[str]] = {}
    results = _changing(ctx, host, results)
    reported = _lock_reported(ctx, {r["port_id"] for r in results})
    locked = reported.ports
    for result in results:
        port = locked.get(result["port_id"])
        if port is not None and port.migration and port.migration.get("target") == host:
            from app.services import migration

            if port.migration.get("phase") == "plugging":
                migration.target_reported(ctx, port, result)
                continue
        if port is None or port.host != host:
            if result["state"] == "plugged":
                # a late or redelivered plug for a port already released: take it back out
                # (only a plug: a failed removal, as of a name a new port owns now, would
                # else be sent again for ever; reconcile removes what is left by owner)
                stale.append(
                    Port(
                        id=result["port_id"],
                        host=host,
                        tap=result["tap"],
                        bridge=result["bridge"],
                        mac=result["guest_mac"],
                        mac_table_manager="kernel",
                        spec={},
                        generation=0,
                    )
                )
            continue
        if port.generation != result["generation"]:
            continue
        before = port.state
        _advance(ctx, port, result)
        if port.state == "released" and port.operation_id is None:
            ctx.db.delete(port)  # its operation already ended (past its deadline)
        if port.state != before and port.network_id is not None:
            moved.append(port)
        op_id = port.operation_id
        op = reported.operations.get(op_id) if op_id else None
        if op_id and op is None:
            op = ctx.db.get(Operation, op_id)  # not locked by us: a migration's, say
        if op is not None:
            if op.state != "running" or not operations.counted(port, op):
                continue  # a redelivered report: counted the first time
            touched[op.id] = op
            if result["state"] == "busy":
                refused.setdefault(op.id, []).append(result.get("error") or port.tap)
    for op in touched.values():
        if op.pending == 0 and op.state == "running":
            # every port of ``op`` was locked above, and only ever leaves it: no query
            op_ports = [p for p in locked.values() if p.operation_id == op.id]
            finish(ctx, op, refused.get(op.id), op_ports=op_ports)
    if stale:
        ports.send(ctx, stale, present=False)
    overlay.nudge_ports(ctx, [p for p in moved if p.network_id in reported.overlay_networks])
    ctx.commit(conflict=race("a port being released"))


#: from this many clean "plugged" results on, a report leaves out the ports it would not
#: change before it locks the others
_WORTH_READING = 32
#: above this many, their rows are read by host rather than by id
_BY_HOST = 200


def _changing(ctx: Ctx, host: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results that may change something: all but a clean "plugged" of a port that is
    plugged on ``host`` at that generation with no error, no operation waiting for it, no
    migration, and the same outbound mode (a reconcile reports every port, and finds most as
    they were).

    Read in one query, without locks: a port that matched when read got nothing from the
    report, which is then as if recorded just before whatever changed the port after the
    read (a later writer bumps the generation or starts an operation; its own message to
    the host comes after, and the host's report of that is recorded in full)."""
    clean = {
        r["port_id"]: r
        for r in results
        if r["state"] == "plugged" and not r.get("error") and not r.get("error_code")
    }
    if len(clean) < _WORTH_READING:
        return results  # a small report locks its few ports at once: one query fewer
    columns = (
        Port.id,
        Port.generation,
        Port.state,
        Port.error,
        Port.operation_id,
        Port.migration,
        Port.spec[ERROR_CODE].label("error_code"),  # two keys, not the whole JSON
        Port.spec["outbound_mode"].label("outbound_mode"),
    )
    query = select(*columns).where(Port.host == host)
    if len(clean) <= _BY_HOST:
        query = query.where(Port.id.in_(clean))
    settled = set()
    for row in ctx.db.execute(query):
        result = clean.get(row.id)
        if (
            result is not None
            and row.generation == result["generation"]
            and row.state == "plugged"
            and row.error is None
            and row.operation_id is None
            and row.migration is None
            and row.error_code is None
            and row.outbound_mode == result.get("outbound")
        ):
            settled.add(row.id)
    if not settled:
        return results
    return [r for r in results if r["port_id"] not in settled]


def _advance(ctx: Ctx, port: Port, result: dict[str, Any]) -> None:
    state, error = result["state"], result.get("error")
    code = result.get("error_code") if error else None
    if port.spec.get(ERROR_CODE) != code:  # what kind of failure (app.messages.HostErrorCode)
        port.spec = {**port.spec, ERROR_CODE: code}
    before = port.state
    if port.state == "unplugging" and state == "busy":
        port.state = "plugged"  # left alone: a process holds its tap (or a sibling's) open
        port.error = error
        return
    if port.state == "unplugging" or (before == "failed" and state == "absent"):
        if state == "absent":
            port.state = "released"
        port.error = error
    elif before == "failed" and state == "plugged" and (owner := _tap_taken(ctx, port)):
        # a late plug of a failed port whose name a newer port took: it stays failed (the
        # next full resend removes its device, which is no longer wanted)
        port.error = f"tap {port.tap} was given to port {owner} after this port's plug failed"
    else:
        port.state = state if state in ("plugged", "failed") else port.state
        port.error = error
        if state == "plugged" and port.spec.get("outbound_mode") != result.get("outbound"):
            port.spec = {**port.spec, "outbound_mode": result.get("outbound")}
    kind = {"released": "port.unplugged", "plugged": "port.plugged", "failed": "port.failed"}
    if port.state != before or error:
        events.publish(
            ctx,
            kind.get(port.state, "port.failed"),
            f"port/{port.id}",
            host=port.host,
            tap=port.tap,
            mac=port.mac,
            bridge=port.bridge,
            error=error,
            error_code=code,
        )


def _tap_taken(ctx: Ctx, port: Port) -> str | None:
    """The id of another port on ``port``'s host that holds its tap name, if one does."""
    return ctx.db.scalar(
        select(Port.id).where(
            Port.host == port.host,
            Port.tap == port.tap,
            Port.id != port.id,
            Port.state.not_in(ports.GONE),
        )
    )


def finish(
    ctx: Ctx,
    op: Operation,
    refused: list[str] | None = None,
    *,
    op_ports: list[Port] | None = None,
) -> None:
    """Every port ``op`` waited for has reported (or moved on to a later operation): end it,
    release its ports, and tell its domain. The caller holds the locks of ``op``'s ports
    (``op_ports``: all of them, when the caller has them at hand)."""
    if op_ports is None:
        op_ports = list(ctx.db.scalars(select(Port).where(Port.operation_id == op.id)))
    failed = [p for p in op_ports if p.state == "failed" or (p.error and p.state != "plugged")]
    notes = [op.error] if op.error else []  # why ports left it before they reported
    notes += [f"{p.tap} ({p.mac}): {p.error}" for p in failed]
    operations.finish(op, "; ".join(notes) or None)
    if refused:
        operations.refuse(op, "; ".join(sorted(set(refused))))
    for port in op_ports:
        port.operation_id = None
        if port.state == "released":
            ctx.db.delete(port)
    if op.kind.startswith("domain."):
        name = op.target.removeprefix("domain/")
        domain = ctx.db.scalar(select(Domain).where(Domain.name == name))
        if domain is not None:
            domain_state.after_operation(ctx, domain, op, op_ports)
