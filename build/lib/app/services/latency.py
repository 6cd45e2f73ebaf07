"""Plug and unplug time measured on the hosts, kept as cumulative histograms in SQL."""

from __future__ import annotations

import bisect

from sqlalchemy import select

from app.models import HostLatency
from app.services.context import Ctx

BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def observe(ctx: Ctx, *, host: str, action: str, samples: list[float]) -> None:
    if not samples:
        return
    row = ctx.db.scalar(
        select(HostLatency).where(HostLatency.host == host, HostLatency.action == action)
    )
    if row is None:
        row = HostLatency(host=host, action=action, buckets={"counts": [0] * (len(BUCKETS) + 1)})
        ctx.db.add(row)
    counts = list(row.buckets["counts"])
    for seconds in samples:
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
    row.buckets = {"counts": counts}
    row.total_seconds = (row.total_seconds or 0.0) + sum(samples)
    row.count = (row.count or 0) + len(samples)


def histograms(ctx: Ctx) -> list[HostLatency]:
    return list(ctx.db.scalars(select(HostLatency).order_by(HostLatency.host, HostLatency.action)))
