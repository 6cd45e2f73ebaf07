"""The control worker: the only worker with database credentials; hosts report to it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery

from app import control_batches
from app.celery_app import QueueDrain, make_celery, run_solo_worker, task_sender
from app.config import Settings
from app.db import get_sessionmaker
from app.host_identity import report_secret, verified_host
from app.messages import (
    AppliedReport,
    Heartbeat,
    LeasesReport,
    Message,
    MessageError,
    OverlayReport,
    PortsReport,
    RealisationReport,
)
from app.messages.names import (
    CONTROL_QUEUE,
    HEARTBEAT,
    HEARTBEAT_QUEUE,
    REPORT_APPLIED,
    REPORT_LEASES,
    REPORT_OVERLAY,
    REPORT_PORTS,
    REPORT_REALISATION,
)
from app.services import (
    hosts,
    intent,
    latency,
    migration,
    networks,
    overlay,
    port_lifecycle,
    realisation,
    retry,
)
from app.services.context import Ctx
from app.services.outbox import Outbox

log = logging.getLogger("virtnet.control")
M = TypeVar("M", bound=Message)


def register_control_tasks(
    celery: Celery, settings: Settings, drain: QueueDrain | None = None
) -> None:
    """``drain``: take the reports waiting behind a port or revision report along with it
    and record them together (app.control_batches)."""
    sessions = get_sessionmaker(settings.effective_database_url)
    send = task_sender(celery)
    secret = report_secret(settings, create=True)
    assert secret is not None

    def ctx_for(session: Any) -> Ctx:
        return Ctx(db=session, outbox=Outbox(send), settings=settings)

    def genuine(name: str, message: dict[str, Any]) -> bool:
        """Only a message signed with the key of the host it names is recorded."""
        if verified_host(secret, name, dict(message)) is not None:
            return True
        log.warning(
            "refused %s claiming host %r: not signed with that host's key",
            name,
            message.get("host"),
        )
        return False

    def read(name: str, kind: type[M], message: dict[str, Any]) -> M | None:
        """The report if it is signed by the host it names and well formed, else None."""
        if not genuine(name, message):
            return None
        try:
            return kind.read(message, name)
        except MessageError as exc:  # from a host of another version, or a bug: say which
            log.error("refused a report: %s", exc)
            return None

    def heartbeat(message: dict[str, Any]) -> None:
        if (beat := read(HEARTBEAT, Heartbeat, message)) is None:
            return
        with sessions() as session:
            hosts.heartbeat(
                ctx_for(session),
                name=beat.host,
                worker_id=beat.worker_id,
                capabilities=beat.capabilities,
                registering=beat.registering,
            )

    def report_leases(message: dict[str, Any]) -> None:
        if (report := read(REPORT_LEASES, LeasesReport, message)) is None:
            return
        with sessions() as session:
            realisation.record_leases(
                ctx_for(session),
                host=report.host,
                network_id=report.network_id,
                leases=report.leases,
            )

    def report_realisation(message: dict[str, Any]) -> None:
        if (report := read(REPORT_REALISATION, RealisationReport, message)) is None:
            return
        with sessions() as session:
            retry.run(  # a deadlock or a row changed meanwhile: the report is applied again
                ctx_for(session),
                lambda ctx: realisation.record_report(
                    ctx,
                    host=report.host,
                    network_id=report.network_id,
                    generation=report.generation,
                    state=report.state,
                    error=report.error,
                    error_code=report.error_code,
                ),
                what="realisation report",
            )

    def report_ports(message: dict[str, Any]) -> None:
        if (report := read(REPORT_PORTS, PortsReport, message)) is None:
            return
        results = [r.wire() for r in report.results]
        with sessions() as session:
            retry.run(  # a deadlock or a port changed meanwhile: the report is applied again
                ctx_for(session),
                lambda ctx: port_lifecycle.record(ctx, host=report.host, results=results),
                what="port report",
            )
        record_latency({report.host: results})
        if report.applied is not None:
            record_applied(report.host, report.applied)

    def report_applied(message: dict[str, Any]) -> None:
        if (report := read(REPORT_APPLIED, AppliedReport, message)) is None:
            return
        record_applied(report.host, report.revision)

    def record_applied(host: str, revision: int) -> None:
        with sessions() as session:
            retry.run(
                ctx_for(session),
                lambda ctx: intent.record_applied(ctx, host=host, revision=revision),
                what="revision report",
            )

    def report_overlay(message: dict[str, Any]) -> None:
        if (report := read(REPORT_OVERLAY, OverlayReport, message)) is None:
            return
        with sessions() as session:
            ctx = ctx_for(session)
            overlay.record_report(
                ctx,
                host=report.host,
                network_id=report.network_id,
                generation=report.generation,
                digest=report.digest,
                remote_entries=report.remote_entries,
                error=report.error,
                resync=report.resync,
            )
            migration.after_overlay_report(ctx, network_id=report.network_id)
            ctx.commit(conflict="an overlay report raced another; the next one settles it")

    handlers: dict[str, Callable[[dict[str, Any]], None]] = {
        HEARTBEAT: heartbeat,
        REPORT_LEASES: report_leases,
        REPORT_REALISATION: report_realisation,
        REPORT_PORTS: report_ports,
        REPORT_APPLIED: report_applied,
        REPORT_OVERLAY: report_overlay,
    }

    def alone(name: str, message: dict[str, Any]) -> None:
        handler = handlers.get(name)
        if handler is None:
            log.error("refused a message for an unknown task %r", name)
            return
        handler(message)

    def read_grouped(name: str, message: dict[str, Any]) -> PortsReport | AppliedReport | None:
        kind: type[PortsReport] | type[AppliedReport]
        kind = PortsReport if name == REPORT_PORTS else AppliedReport
        return read(name, kind, message)

    def record_latency(results: dict[str, list[dict[str, Any]]]) -> None:
        try:
            with sessions() as session:
                for host, host_results in sorted(results.items()):
                    latency.observe_results(ctx_for(session), host=host, results=host_results)
        except Exception:  # only the histograms miss them; the report itself is recorded
            log.exception("latency samples of a port report were not counted")

    def record(call: Callable[[Ctx], None]) -> None:
        with sessions() as session:
            retry.run(ctx_for(session), call, what="reports recorded together")

    def batch(name: str, message: dict[str, Any]) -> None:
        taken = drain.take() if drain is not None else []
        try:
            control_batches.handle(
                (name, message),
                taken,
                read=read_grouped,
                alone=alone,
                record=record,
                recorded=record_latency,
            )
        finally:  # after they are recorded; never if the process died
            if drain is not None:
                drain.ack(taken)

    def register(name: str) -> None:
        grouped = name in control_batches.GROUPED

        def task(**message: Any) -> None:
            if grouped:
                batch(name, message)
            else:
                handlers[name](message)

        celery.task(name=name, ignore_result=True)(task)

    for name in handlers:
        register(name)


def _sweep_hosts(settings: Settings, send: Any, stop: threading.Event) -> None:
    """Announce hosts that stopped sending heartbeats, drop old events, and resend overlay
    state to hosts whose applied state differs from the desired one."""
    sessions = get_sessionmaker(settings.effective_database_url)
    lagging: dict[tuple[int, str], tuple[str, float]] = {}
    grace = max(2.0, 2 * settings.heartbeat_seconds)
    while not stop.wait(settings.heartbeat_seconds):
        try:
            with sessions() as session:
                hosts.sweep(Ctx(db=session, outbox=Outbox(send), settings=settings))
            with sessions() as session:
                ctx = Ctx(db=session, outbox=Outbox(send), settings=settings)
                if overlay.out_of_sync(ctx, lagging, grace):
                    ctx.commit(conflict="overlay resend")
        except Exception:  # the database may be briefly away; try again next round
            log.exception("host sweep failed")


def _resync(settings: Settings, send: Any, stop: threading.Event) -> None:
    """The anti-entropy pass: hosts that lag get their whole desired state again."""
    sessions = get_sessionmaker(settings.effective_database_url)
    readers = get_sessionmaker(settings.effective_database_url, read_only=True)
    while not stop.wait(settings.resync_seconds):
        try:
            with readers() as session:
                ctx = Ctx(db=session, outbox=Outbox(None), settings=settings)
                up = [h.name for h in realisation.up_hosts(ctx)]
                late = intent.lagging(ctx, up)
            for host in late:
                with sessions() as session:
                    ctx = Ctx(db=session, outbox=Outbox(send), settings=settings)
                    desired, applied, _ = intent.status(ctx, host)
                    realisation.plan_full(ctx, host, comeback=False)
                    ctx.commit(conflict=f"host {host!r} resync raced another")
                    if ctx.outbox.lost:  # not sent: no reason to wait longer next time
                        intent.not_resent(ctx, host)
                        continue
                log.warning(
                    "host %s lagged (desired revision %d, applied %d, or a report is missing):"
                    " its whole desired state was sent again",
                    host,
                    desired,
                    applied,
                )
        except Exception:  # the database may be briefly away; try again next round
            log.exception("resync pass failed")


def run_control_worker(settings: Settings) -> int:
    from app.services.schema import upgrade_database

    upgrade_database(settings)
    celery = make_celery(settings)
    # the heartbeats first: recorded before the reports taken along (app.control_batches)
    drain = QueueDrain(celery, HEARTBEAT_QUEUE, CONTROL_QUEUE)
    register_control_tasks(celery, settings, drain)
    with get_sessionmaker(settings.effective_database_url)() as session:
        ctx = Ctx(db=session, outbox=Outbox(task_sender(celery)), settings=settings)
        for name in networks.autostart_all(ctx):
            log.warning("autostarted network %s", name)
    stop = threading.Event()
    threading.Thread(
        target=_sweep_hosts, args=(settings, task_sender(celery), stop), name="sweep", daemon=True
    ).start()
    threading.Thread(
        target=_resync, args=(settings, task_sender(celery), stop), name="resync", daemon=True
    ).start()
    try:
        run_solo_worker(celery, queues=f"{HEARTBEAT_QUEUE},{CONTROL_QUEUE}", node="control@%h")
    finally:
        stop.set()
        drain.close()
    return 0
