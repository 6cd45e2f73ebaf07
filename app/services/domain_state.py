"""What a finished host operation means for its domain."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Domain, Operation, Port
from app.services.context import Ctx


def domain_ports(ctx: Ctx, domain: Domain) -> list[Port]:
    query = select(Port).where(Port.domain_id == domain.id).order_by(Port.created_at, Port.id)
    return list(ctx.db.scalars(query))


def after_operation(ctx: Ctx, domain: Domain, op: Operation, op_ports: list[Port]) -> None:
    from app.services import port_lifecycle

    if op.kind == "domain.start":
        if op.error:
            # libvirt's rule: a domain that cannot get all its interfaces does not run
            live = [p for p in domain_ports(ctx, domain) if p.state != "unplugging"]
            port_lifecycle.unplug(ctx, live, kind="domain.rollback", target=op.target)
            domain.state, domain.error = "shut_off", op.error
        else:
            domain.state, domain.error = "running", None
    elif op.kind == "domain.stop":
        domain.state = "shut_off"
    elif op.kind == "domain.suspend":
        domain.state = "paused" if not op.error else domain.state
    elif op.kind == "domain.resume":
        domain.state = "running" if not op.error else domain.state
    elif op.kind == "domain.attach" and op.error:
        macs = {p.mac for p in op_ports}
        failed = [p for p in op_ports if p.state != "released"]
        port_lifecycle.unplug(ctx, failed, kind="domain.rollback", target=op.target)
        interfaces = domain.definition.get("interfaces", [])
        domain.definition = {
            **domain.definition,
            "interfaces": [i for i in interfaces if i.get("mac") not in macs],
        }
    domain.error = op.error if op.error else domain.error
