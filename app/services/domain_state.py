"""What a finished host operation means for its domain."""

from __future__ import annotations

from app.models import Domain, Operation, Port
from app.services import events, ports
from app.services.context import Ctx
from app.services.port_queries import domain_ports

_EVENTS = {"paused": "domain.suspended", "shut_off": "domain.stopped"}


def set_state(ctx: Ctx, domain: Domain, state: str, error: str | None = None) -> None:
    """Change a domain's state; settled states are announced as events."""
    before, domain.state = domain.state, state
    domain.error = error
    if state == before:
        return
    kind = _EVENTS.get(state)
    if state == "running":
        kind = "domain.resumed" if before == "paused" else "domain.started"
    if kind:
        events.publish(ctx, kind, f"domain/{domain.name}", uuid=domain.uuid, error=error)


def after_operation(ctx: Ctx, domain: Domain, op: Operation, op_ports: list[Port]) -> None:
    if op.kind == "domain.start":
        if op.error:
            # libvirt's rule: a domain that cannot get all its interfaces does not run. It is
            # shut off once the interfaces already plugged are unplugged and released, so a
            # retry never finds their MACs or taps still taken.
            live = [p for p in domain_ports(ctx, domain) if p.state != "unplugging"]
            ports.unplug(ctx, live, kind="domain.start.rollback", target=op.target)
            set_state(ctx, domain, "stopping" if live else "shut_off", op.error)
        else:
            set_state(ctx, domain, "running")
    elif op.kind == "domain.start.rollback":
        set_state(ctx, domain, "shut_off", domain.error)
    elif op.kind in ("domain.stop", "domain.stop.paused"):
        if op.state == "refused":  # a tap in use: the host left every interface plugged
            # back to where it was, quietly: "stopping" was never announced either
            domain.state = "paused" if op.kind.endswith("paused") else "running"
        else:
            set_state(ctx, domain, "shut_off", op.error)
    elif op.kind == "domain.suspend" and not op.error:
        set_state(ctx, domain, "paused")
    elif op.kind == "domain.resume" and not op.error:
        set_state(ctx, domain, "running")
    elif op.kind == "domain.detach" and op.state != "refused":
        gone = {p.mac for p in op_ports if p.state == "released"}
        interfaces = domain.definition.get("interfaces", [])
        domain.definition = {
            **domain.definition,
            "interfaces": [i for i in interfaces if i.get("mac") not in gone],
        }
    elif op.kind == "domain.attach" and op.error:
        macs = {p.mac for p in op_ports}
        failed = [p for p in op_ports if p.state != "released"]
        ports.unplug(ctx, failed, kind="domain.rollback", target=op.target)
        interfaces = domain.definition.get("interfaces", [])
        domain.definition = {
            **domain.definition,
            "interfaces": [i for i in interfaces if i.get("mac") not in macs],
        }
    if op.error:
        domain.error = op.error
