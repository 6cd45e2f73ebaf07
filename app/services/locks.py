"""Row locks for writes that may race: a host's report and the API's writes to the same rows.

Every writer takes its locks in one order, so two of them never wait for each other in a
circle: domain, then network, then ports (by id), then operations (by id). (A domain start
learns its networks from the domain; nothing that locks a network locks a domain after it.)
Each lock re-reads its rows (``populate_existing``): what a writer decides from is what the
database holds once it has the row, not what an earlier read in the same session saw.

PostgreSQL takes ``FOR NO KEY UPDATE`` (``FOR SHARE`` for a network a port is added to: adding
ports in parallel is fine, stopping the network meanwhile is not). SQLite has no row locks and
needs none: each of its transactions holds the database's one write lock from its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import aliased

from app.models import Domain, Network, Operation, Port
from app.services.context import Ctx


def _locked(query: Select[Any], *, share: bool = False) -> Select[Any]:
    # FOR NO KEY UPDATE: an insert that references the row (its FK check) need not wait
    query = query.with_for_update(read=True) if share else query.with_for_update(key_share=True)
    return query.execution_options(populate_existing=True)


def network(ctx: Ctx, name: str, *, share: bool = False) -> Network | None:
    return ctx.db.scalar(_locked(select(Network).where(Network.name == name), share=share))


def domain(ctx: Ctx, name: str) -> Domain | None:
    return ctx.db.scalar(_locked(select(Domain).where(Domain.name == name)))


def domains(ctx: Ctx, ids: Iterable[int]) -> dict[int, Domain]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(Domain).where(Domain.id.in_(wanted)).order_by(Domain.id)
    return {d.id: d for d in ctx.db.scalars(_locked(query))}


def ports(ctx: Ctx, ids: Iterable[str]) -> dict[str, Port]:
    """Lock ports by id, lowest first (PostgreSQL locks the rows in the order it returns them)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(Port).where(Port.id.in_(wanted)).order_by(Port.id)
    return {p.id: p for p in ctx.db.scalars(_locked(query))}


def lone_port(ctx: Ctx, port_id: str) -> tuple[Port, Operation, int | None] | None:
    """Port ``port_id`` and the operation waiting for it, locked in one statement (the port,
    then the operation: the one order), with its network's VNI; only if the port has no
    domain and its operation waits for no other port. None otherwise, with nothing locked.

    The hot path of a single plug's report: one round trip where finding what to lock and
    locking it would take three. The operation's other ports may only leave it, so a read
    that finds none stays true."""
    row = ctx.db.execute(_lone_port_query(), {"port_id": port_id}).first()
    return (row[0], row[1], row[2]) if row is not None else None


@cache
def _lone_port_query() -> Select[Port, Operation, int | None]:
    """Built once: making the statement costs as much as running it."""
    sibling = aliased(Port)
    others = select(sibling.id).where(
        sibling.operation_id == Port.operation_id, sibling.id != Port.id
    )
    wanted = Port.id == bindparam("port_id")
    return (
        select(Port, Operation, Network.vni)
        .join(Operation, Operation.id == Port.operation_id)
        .outerjoin(Network, Network.id == Port.network_id)
        .where(wanted, Port.domain_id.is_(None), ~others.exists())
        .with_for_update(key_share=True, of=[Port, Operation])
        .execution_options(populate_existing=True)
    )


def port_list(ctx: Ctx, port_list: list[Port]) -> list[Port]:
    """Lock ports already read (same order as given, rows gone meanwhile left out)."""
    locked = ports(ctx, [p.id for p in port_list])
    return [locked[p.id] for p in port_list if p.id in locked]


def operations(ctx: Ctx, ids: Iterable[str]) -> dict[str, Operation]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(Operation).where(Operation.id.in_(wanted)).order_by(Operation.id)
    return {o.id: o for o in ctx.db.scalars(_locked(query))}


def operation(ctx: Ctx, op_id: str) -> Operation | None:
    return operations(ctx, [op_id]).get(op_id)
