"""Read-only questions about ports, asked by networks, domains, hosts and the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select

from app.models import Domain, Port
from app.services.context import Ctx

_IN_ORDER = (Port.created_at, Port.id)


def network_ports(ctx: Ctx, network_id: int) -> list[Port]:
    query = select(Port).where(Port.network_id == network_id).order_by(*_IN_ORDER)
    return list(ctx.db.scalars(query))


def domain_ports(ctx: Ctx, domain: Domain) -> list[Port]:
    query = select(Port).where(Port.domain_id == domain.id).order_by(*_IN_ORDER)
    return list(ctx.db.scalars(query))


def reread(ctx: Ctx, port: Port) -> Port:
    """The port as the database has it now (a host may have changed it meanwhile); the read
    transaction ends here (on SQLite an open one would hold back every writer), its objects
    stay loaded."""
    port = ctx.db.get(Port, port.id, populate_existing=True) or port
    ctx.db.commit()
    return port


def host_ports(ctx: Ctx, host: str) -> list[Row[Any]]:
    """The host's ports, with what their desired state needs (ports.host_port) and their
    state: plain rows, not ORM objects (10,000 of those took 0.25 s to load)."""
    columns = (
        Port.id,
        Port.owner_uuid,
        Port.generation,
        Port.tap,
        Port.bridge,
        Port.mac,
        Port.mac_table_manager,
        Port.fdb,
        Port.spec,
        Port.state,
    )
    return list(ctx.db.execute(select(*columns).where(Port.host == host).order_by(Port.tap)))


def port_labels(ctx: Ctx, network_id: int) -> list[str]:
    """Ports still attached to a network, as 'tap@host (owner)' labels."""
    return [f"{p.tap}@{p.host} ({p.owner_name})" for p in network_ports(ctx, network_id)]
