"""Hosts register and send heartbeats through the control worker."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import select

from app.models import Host, utcnow
from app.services import events, operations, realisation, retry
from app.services.context import Ctx
from app.services.errors import NotFound

log = logging.getLogger("virtnet.hosts")


def get(ctx: Ctx, name: str) -> Host:
    host = ctx.db.get(Host, name)
    if host is None:
        raise NotFound(f"host {name!r} has never registered")
    return host


def listing(ctx: Ctx) -> list[Host]:
    return list(ctx.db.scalars(select(Host).order_by(Host.name)))


def heartbeat(
    ctx: Ctx, *, name: str, worker_id: str, capabilities: dict[str, Any], registering: bool
) -> None:
    """Record that a host worker is alive; a new, restarted or returning one gets its state."""
    host = ctx.db.get(Host, name)
    comeback = (
        registering
        or host is None
        or not ctx.host_is_up(host.last_seen)
        or host.worker_id != worker_id
    )
    if host is None:
        host = Host(name=name)
        ctx.db.add(host)
    host.last_seen = utcnow()
    host.worker_id = worker_id
    if comeback:
        host.down_reported = False
        events.publish(ctx, "host.up", f"host/{name}", worker_id=worker_id)
    host.kernel = str(capabilities.get("kernel_release", host.kernel))
    host.vlan_filtering = bool(capabilities.get("vlan_filtering", host.vlan_filtering))
    host.vlan_8021q = bool(capabilities.get("vlan_8021q", host.vlan_8021q))
    host.tun = bool(capabilities.get("tun", host.tun))
    host.net_admin = bool(capabilities.get("net_admin", host.net_admin))
    underlay = capabilities.get("underlay")
    if underlay != host.underlay:
        comeback = True  # its overlay networks are realised (or dropped) anew, peers told
    host.underlay = underlay
    host.underlay_mtu = capabilities.get("underlay_mtu")
    ctx.db.flush()
    if comeback:
        realisation.plan_host_up(ctx, name)
    ctx.commit(conflict=f"host {name!r} registered twice at the same time; it will retry")


def sweep(ctx: Ctx) -> list[str]:
    """Announce hosts that fell silent (each silence once); end operations past the deadline."""
    gone = []
    for host in ctx.db.scalars(select(Host).where(Host.down_reported.is_(False))).all():
        if not ctx.host_is_up(host.last_seen):
            host.down_reported = True
            events.publish(
                ctx, "host.down", f"host/{host.name}", last_seen=host.last_seen.isoformat()
            )
            gone.append(host.name)
    events.prune(ctx)
    ctx.db.commit()
    for op_id in operations.overdue(ctx):
        try:
            retry.run(ctx, partial(_expire, op_id=op_id), what="operation deadline")
        except Exception:  # one operation's trouble must not keep the others running
            ctx.db.rollback()
            log.exception("ending overdue operation %s failed", op_id)
    return gone


def _expire(ctx: Ctx, *, op_id: str) -> None:
    if operations.expire(ctx, op_id) is not None:
        ctx.commit(conflict="an operation ended while its deadline passed")
