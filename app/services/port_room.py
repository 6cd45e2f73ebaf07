"""A single port's room on its host and network, worked out by PostgreSQL in one statement.

Reading every port of the host into Python cost ~100 ms per plug with 10,000 ports on it;
here the database answers from its indexes (``ports(network_id, mac)``, ``ports(host,
bridge)``, the live ``(host, tap)`` index, the partial index of migrating ports) and returns
one row: the port holding the MAC, how many ports the bridge has, whether the tap name asked
for is taken, and the lowest free ``vnetN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import TextClause, text

from app.services.context import Ctx

#: ports whose tap name is held: not failed or released (models.LIVE_TAP)
_LIVE = "state NOT IN ('failed', 'released')"
#: a name ``lowest_free_tap`` could make: vnet0, vnet1, ... (no leading zero, < 10**9)
_GENERATED = "'^vnet(0|[1-9][0-9]{0,8})$'"


@dataclass(frozen=True)
class Room:
    mac_port: str | None  # the port using the MAC on the network already
    mac_owner: str | None
    on_bridge: int
    tap_taken: bool  # the tap name asked for (if any) is used or reserved
    free_tap: str


@cache
def _statement() -> TextClause:
    # a migration to the host holds its target tap name there (migration.reserved_taps)
    return text(
        f"""
        WITH reserved AS (
            SELECT migration ->> 'target_tap' AS tap FROM ports
            WHERE migration IS NOT NULL AND migration ->> 'target' = :host
        ), used AS (
            SELECT tap FROM ports WHERE host = :host AND {_LIVE} AND tap ~ {_GENERATED}
            UNION SELECT tap FROM reserved WHERE tap ~ {_GENERATED}
        ), numbers AS MATERIALIZED (
            SELECT CAST(substr(tap, 5) AS integer) AS n FROM used
        )
        SELECT
            (SELECT id FROM ports WHERE network_id = :network_id AND mac = :mac) AS mac_port,
            (SELECT owner_name FROM ports WHERE network_id = :network_id AND mac = :mac)
                AS mac_owner,
            (SELECT count(*) FROM ports WHERE host = :host AND bridge = :bridge AND {_LIVE})
                AS on_bridge,
            (CAST(:tap AS varchar) IS NOT NULL AND (
                EXISTS (SELECT 1 FROM ports WHERE host = :host AND tap = :tap AND {_LIVE})
                OR EXISTS (SELECT 1 FROM reserved WHERE tap = :tap))) AS tap_taken,
            CASE WHEN NOT EXISTS (SELECT 1 FROM numbers WHERE n = 0) THEN 0
                 ELSE (SELECT min(n) + 1 FROM numbers AS u
                       WHERE NOT EXISTS (SELECT 1 FROM numbers AS v WHERE v.n = u.n + 1))
            END AS free_number
        """
    )


def room(
    ctx: Ctx, *, host: str, bridge: str, network_id: int | None, mac: str, tap: str | None
) -> Room:
    params = {"host": host, "bridge": bridge, "network_id": network_id, "mac": mac, "tap": tap}
    row = ctx.db.execute(_statement(), params).one()
    return Room(
        mac_port=row.mac_port,
        mac_owner=row.mac_owner,
        on_bridge=int(row.on_bridge),
        tap_taken=bool(row.tap_taken),
        free_tap=f"vnet{row.free_number}",
    )
