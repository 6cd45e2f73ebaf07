"""The control worker: the only worker with database credentials; hosts report to it."""

from __future__ import annotations

import logging
import threading
from typing import Any, TypeVar

from celery import Celery

from app.celery_app import make_celery, task_sender
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


def register_control_tasks(celery: Celery, settings: Settings) -> None:
    sessions = get_sessionmaker(settings.effective_database_url)
    send = task_sender(celery)
    secret = report_secret(settings, create=True)
    assert secret is not None

    def ctx_for(session: Any) -> Ctx:
        return Ctx(db=session, outbox=Outbox(send), settings=settings)

    def genuine(task: Any) -> bool:
        """Only a message signed with the key of the host it names is recorded."""
        kwargs = dict(task.request.kwargs or {})
        if verified_host(secret, task.name, kwargs) is not None:
            return True
        log.warning(
            "refused %s claiming host %r: not signed with that host's key",
            task.name,
            kwargs.get("host"),
        )
        return False

    def read(task: Any, kind: type[M], message: dict[str, Any]) -> M | None:
        """The report if it is signed by the host it names and well formed, else None."""
        if not genuine(task):
            return None
        try:
            return kind.read(message, task.name)
        except MessageError as exc:  # from a host of another version, or a bug: say which
            log.error("refused a report: %s", exc)
            return None

    @celery.task(name=HEARTBEAT, ignore_result=True, bind=True)
    def heartbeat(self: Any, **message: Any) -> None:
        if (beat := read(self, Heartbeat, message)) is None:
            return
        with sessions() as session:
            hosts.heartbeat(
                ctx_for(session),
                name=beat.host,
                worker_id=beat.worker_id,
                capabilities=beat.capabilities,
                registering=beat.registering,
            )

    @celery.task(name=REPORT_LEASES, ignore_result=True, bind=True)
    def report_leases(self: Any, **message: Any) -> None:
        if (report := read(self, LeasesReport, message)) is None:
            return
        with sessions() as session:
            realisation.record_leases(
                ctx_for(session),
                host=report.host,
                network_id=report.network_id,
                leases=report.leases,
            )

    @celery.task(name=REPORT_REALISATION, ignore_result=True, bind=True)
    def report_realisation(self: Any, **message: Any) -> None:
        if (report := read(self, RealisationReport, message)) is None:
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

    @celery.task(name=REPORT_PORTS, ignore_result=True, bind=True)
    def report_ports(self: Any, **message: Any) -> None:
        if (report := read(self, PortsReport, message)) is None:
            return
        results = [r.wire() for r in report.results]
        with sessions() as session:
            retry.run(  # a deadlock or a port changed meanwhile: the report is applied again
                ctx_for(session),
                lambda ctx: port_lifecycle.record(ctx, host=report.host, results=results),
                what="port report",
            )

    @celery.task(name=REPORT_APPLIED, ignore_result=True, bind=True)
    def report_applied(self: Any, **message: Any) -> None:
        if (report := read(self, AppliedReport, message)) is None:
            return
        with sessions() as session:
            retry.run(
                ctx_for(session),
                lambda ctx: intent.record_applied(ctx, host=report.host, revision=report.revision),
                what="revision report",
            )

    @celery.task(name=REPORT_OVERLAY, ignore_result=True, bind=True)
    def report_overlay(self: Any, **message: Any) -> None:
        if (report := read(self, OverlayReport, message)) is None:
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
    register_control_tasks(celery, settings)
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
    celery.worker_main(
        [
            "worker",
            "-Q",
            f"{HEARTBEAT_QUEUE},{CONTROL_QUEUE}",
            "--pool",
            "solo",
            "-n",
            "control@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]
    )
    return 0
