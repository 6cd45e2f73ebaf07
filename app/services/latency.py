"""Plug and unplug time measured on the hosts, kept as cumulative histograms in SQL."""

from __future__ import annotations

import bisect
from functools import cache
from typing import Any

from sqlalchemy import ColumnClause, Table, bindparam, literal_column, select
from sqlalchemy.dialects import postgresql

from app.models import HostLatency
from app.services.context import Ctx

BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: the stored counts plus the new ones, bucket by bucket (PostgreSQL, in the upsert)
_ADD_COUNTS: ColumnClause[Any] = literal_column(
    "json_build_object('counts', (SELECT json_agg(coalesce(old.n::int, 0) + new.n::int"
    " ORDER BY new.i) FROM json_array_elements_text(excluded.buckets -> 'counts')"
    " WITH ORDINALITY AS new(n, i) LEFT JOIN json_array_elements_text("
    "host_latency.buckets -> 'counts') WITH ORDINALITY AS old(n, i) ON old.i = new.i))"
)


def observe(ctx: Ctx, *, host: str, action: str, samples: list[float]) -> None:
    """Count ``samples`` (seconds) into the host's histogram for ``action``: on PostgreSQL
    one statement that adds to the stored counts (a report's hot path; concurrent reports
    add up), elsewhere the row is read and written back."""
    if not samples:
        return
    counts = [0] * (len(BUCKETS) + 1)
    for seconds in samples:
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
    if ctx.db.get_bind().dialect.name == "postgresql":
        params: dict[str, Any] = {"v_host": host, "v_action": action, "v_count": len(samples)}
        params |= {"v_buckets": {"counts": counts}, "v_total_seconds": sum(samples)}
        ctx.db.execute(_add_statement(), params)
        return
    row = ctx.db.scalar(
        select(HostLatency).where(HostLatency.host == host, HostLatency.action == action)
    )
    if row is None:
        row = HostLatency(host=host, action=action, buckets={"counts": []})
        ctx.db.add(row)
    old = list(row.buckets["counts"])
    old += [0] * (len(counts) - len(old))
    row.buckets = {"counts": [o + n for o, n in zip(old, counts, strict=False)]}
    row.total_seconds = (row.total_seconds or 0.0) + sum(samples)
    row.count = (row.count or 0) + len(samples)


@cache
def _add_statement() -> Any:
    """``observe``'s upsert on PostgreSQL, built once (each report runs it)."""
    table: Table = HostLatency.__table__  # type: ignore[assignment]
    columns = ("host", "action", "buckets", "total_seconds", "count")
    stmt = postgresql.insert(table).values({name: bindparam(f"v_{name}") for name in columns})
    return stmt.on_conflict_do_update(
        index_elements=[table.c.host, table.c.action],
        set_={
            "buckets": _ADD_COUNTS,
            "total_seconds": table.c.total_seconds + stmt.excluded.total_seconds,
            "count": table.c.count + stmt.excluded.count,
        },
    )


def observe_results(ctx: Ctx, *, host: str, results: list[dict[str, Any]]) -> None:
    """Count the plug and unplug times of a host's port report. Its own transaction, after
    the report's: every ``?wait`` waits for the report's commit, not for the histograms."""
    for action, done in (("plug", "plugged"), ("unplug", "absent")):
        samples = [r["seconds"] for r in results if r["state"] == done and "seconds" in r]
        observe(ctx, host=host, action=action, samples=samples)
    ctx.commit(conflict="latency samples raced another report")


def histograms(ctx: Ctx) -> list[HostLatency]:
    return list(ctx.db.scalars(select(HostLatency).order_by(HostLatency.host, HostLatency.action)))
