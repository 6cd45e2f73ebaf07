"""Read-only questions about ports that the network lifecycle asks."""

from __future__ import annotations

from app.services.context import Ctx


def port_labels(ctx: Ctx, network_id: int) -> list[str]:
    """Ports still attached to a network, as 'tap@host' labels; none until ports exist."""
    return []
