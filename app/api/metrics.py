"""GET /metrics: request metrics from this process, the rest read from SQL and the broker."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.celery_app import (
    CONTROL_QUEUE,
    HEARTBEAT_QUEUE,
    broker_options,
    host_queue,
    redis_client_url,
)
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Host, Network, Operation, Port
from app.services import intent, latency
from app.services.context import Ctx
from app.services.errors import Unauthorized
from app.services.outbox import Outbox


class StateCollector:
    """Counts that live in SQL (shared by every process), read at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        with get_sessionmaker(self.settings.effective_database_url, read_only=True)() as db:
            ctx = Ctx(db, Outbox(None), self.settings)
            yield from self._operations(ctx)
            yield from self._ports(ctx)
            hosts = list(db.scalars(select(Host)))
            yield from self._hosts(ctx, hosts)
            yield from self._latency(ctx)
        yield self._queues([h.name for h in hosts])

    def _operations(self, ctx: Ctx) -> Iterator[Any]:
        ops = CounterMetricFamily(
            "virtnet_operations", "Operations by kind and outcome", labels=["kind", "state"]
        )
        rows = ctx.db.execute(
            select(Operation.kind, Operation.state, func.count()).group_by(
                Operation.kind, Operation.state
            )
        )
        for kind, state, count in rows:
            ops.add_metric([kind, state], count)
        yield ops

    def _ports(self, ctx: Ctx) -> Iterator[Any]:
        ports = GaugeMetricFamily(
            "virtnet_ports", "Ports by network, host and state", labels=["network", "host", "state"]
        )
        rows = ctx.db.execute(
            select(func.coalesce(Network.name, ""), Port.host, Port.state, func.count())
            .select_from(Port)
            .outerjoin(Network, Network.id == Port.network_id)
            .group_by(Network.name, Port.host, Port.state)
        )
        for network, host, state, count in rows:
            ports.add_metric([network, host, state], count)
        yield ports

    def _hosts(self, ctx: Ctx, hosts: list[Host]) -> Iterator[Any]:
        gauge = GaugeMetricFamily("virtnet_hosts", "Hosts up and down", labels=["state"])
        up = sum(ctx.host_is_up(h.last_seen) for h in hosts)
        gauge.add_metric(["up"], up)
        gauge.add_metric(["down"], len(hosts) - up)
        yield gauge
        lag = GaugeMetricFamily(
            "virtnet_host_revision_lag",
            "Desired revisions a host has not reported applied yet (0: caught up)",
            labels=["host"],
        )
        revisions = intent.revisions(ctx)
        for host in hosts:
            desired, applied = revisions.get(host.name, (0, 0))
            lag.add_metric([host.name], max(0, desired - applied))
        yield lag

    def _latency(self, ctx: Ctx) -> Iterator[Any]:
        family = HistogramMetricFamily(
            "virtnet_host_port_seconds",
            "Per-port plug and unplug time measured on the hosts",
            labels=["host", "action"],
        )
        for row in latency.histograms(ctx):
            cumulative, buckets = 0, []
            for bound, count in zip(
                [*latency.BUCKETS, float("inf")], row.buckets["counts"], strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            family.add_metric([row.host, row.action], buckets, row.total_seconds)
        yield family

    def _queues(self, hosts: list[str]) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "virtnet_queue_depth", "Messages waiting in a broker queue", labels=["queue"]
        )
        for queue, depth in queue_depths(
            self.settings, [CONTROL_QUEUE, HEARTBEAT_QUEUE, *map(host_queue, hosts)]
        ).items():
            gauge.add_metric([queue], depth)
        return gauge


def queue_depths(settings: Settings, queues: list[str]) -> dict[str, int]:
    url, options = broker_options(settings)
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(redis_client_url(url), socket_timeout=2)
        try:
            return {q: int(client.llen(q)) for q in queues}
        except redis.RedisError:
            return {}
        finally:
            client.close()
    if url.startswith("filesystem"):
        folder = Path(options["data_folder_in"])
        return {q: sum(1 for _ in folder.glob(f"*.{q}.msg")) for q in queues}
    return {}


class RequestMetrics:
    """Counts requests by route template and status (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp, *, requests: Counter, seconds: Histogram) -> None:
        self.app, self.requests, self.seconds = app, requests, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = getattr(scope.get("route"), "path", "(unmatched)")
            self.requests.labels(scope["method"], path, str(status)).inc()
            self.seconds.labels(scope["method"], path).observe(time.perf_counter() - started)


def install(app: FastAPI, settings: Settings) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "virtnet_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    seconds = Histogram(
        "virtnet_http_request_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    )
    registry.register(StateCollector(settings))

    app.add_middleware(RequestMetrics, requests=requests, seconds=seconds)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        _check_scraper(request, settings)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _check_scraper(request: Request, settings: Settings) -> None:
    """With VIRTNET_METRICS_TOKEN set, a scrape must bring it (the names it shows are private)."""
    if settings.metrics_token is None:
        return
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        secret.strip().encode(), settings.metrics_token.encode()
    ):
        raise Unauthorized("/metrics wants 'Authorization: Bearer <VIRTNET_METRICS_TOKEN>'")
