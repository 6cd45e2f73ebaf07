"""Many ports in one request: one transaction, one operation, one message per host.

All or nothing: an item that cannot be allocated refuses the whole list (naming its index),
and nothing is kept. A retry of the same request is safe when its items name their ``id``:
an item whose id exists already, on this network with the same host and owner (and MAC, if
the item gives one), is that port, returned as it is now instead of a 409; the others are
created. When every item exists, the answer is the operation they still wait for, or else a
finished one that says which of them failed.
"""

from __future__ import annotations

from sqlalchemy import select

from app.conf.errors import Problem
from app.conf.port.model import PortRequest
from app.models import Network, Operation, Port
from app.services import operations, ports
from app.services.context import Ctx
from app.services.errors import Conflict, ServiceError

KIND = "port.plug"


def create(
    ctx: Ctx, *, network_name: str, requests: list[PortRequest]
) -> tuple[list[Port], Operation]:
    network = ports.network_for_ports(ctx, network_name)
    existing = _existing(ctx, network, requests)
    made: list[Port] = []
    room = ports.Room()
    for index, request in enumerate(requests):
        if request.id is not None and str(request.id) in existing:
            continue
        try:
            made.append(ports.allocate(ctx, network=network, request=request, room=room))
        except ServiceError as exc:
            problems = [Problem((index, *p.loc), p.msg) for p in exc.problems]
            raise type(exc)(f"item {index}: {exc.detail}", problems=problems) from None
    listed = [existing.get(str(r.id)) if r.id is not None else None for r in requests]
    it = iter(made)
    result = [port if port is not None else next(it) for port in listed]
    if made:
        op = operations.begin(
            ctx, kind=KIND, target=f"network/{network.name}/ports", pending=len(made)
        )
        for port in made:
            port.operation_id = op.id
        ports.send(ctx, made, present=True)  # one message per host
    else:
        op = _retry_operation(ctx, network, result)
    op.result = {"ports": [p.id for p in result]}
    ctx.commit(conflict="a MAC or tap of these ports was taken by a request made at the same time")
    return result, op


def _existing(ctx: Ctx, network: Network, requests: list[PortRequest]) -> dict[str, Port]:
    """The ports these items name that exist already; each must be the same port."""
    ids = [str(r.id) for r in requests if r.id is not None]
    if len(ids) != len(set(ids)):
        raise Conflict("the list names the same port id twice")
    if not ids:
        return {}
    found = {p.id: p for p in ctx.db.scalars(select(Port).where(Port.id.in_(ids)))}
    for index, request in enumerate(requests):
        port = found.get(str(request.id)) if request.id is not None else None
        if port is None:
            continue
        same = (
            port.network_id == network.id
            and port.host == request.host
            and port.owner_name == request.owner.name
            and port.owner_uuid == str(request.owner.uuid)
            and (request.mac is None or port.mac == request.mac.lower())
        )
        if not same:
            raise Conflict(
                f"item {index}: a different port with id {port.id} already exists",
                problems=[Problem((index, "id"), "a different port has this id")],
            )
    return found


def _retry_operation(ctx: Ctx, network: Network, result: list[Port]) -> Operation:
    running = {p.operation_id for p in result}
    if len(running) == 1 and (op_id := running.pop()) is not None:
        op = ctx.db.get(Operation, op_id)
        if op is not None:
            return op
    op = operations.begin(ctx, kind=KIND, target=f"network/{network.name}/ports", pending=0)
    failed = [f"{p.tap} ({p.mac}): {p.error}" for p in result if p.state == "failed"]
    if failed:
        operations.finish(op, "; ".join(failed))
    return op


def reread(ctx: Ctx, made: list[Port]) -> list[Port]:
    """The ports as they are now, in the same order (one that is gone is left out)."""
    ids = [p.id for p in made]
    query = select(Port).where(Port.id.in_(ids)).execution_options(populate_existing=True)
    now = {p.id: p for p in ctx.db.scalars(query)}
    ctx.db.commit()  # no read transaction left open (SQLite writers would wait on it)
    return [now[i] for i in ids if i in now]
