"""One fault per test under a load of 200 ports created with ?wait by 8 clients; after it the
system converges by itself within 30 s: no port in flight, no operation running, the kernel as
the database says, and every answer true (issue 10)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from app.celery_app import APPLY_PORTS, CONTROL_QUEUE, REPORT_PORTS, host_queue
from tests.faults.load import Load, converge
from tests.faults.rig import HOST, Rig

pytestmark = [pytest.mark.kernel, pytest.mark.integration]

#: a fault strikes once this many ports of the 200 are answered
AFTER = 60
OUTAGE_SECONDS = 3


def under_load(rig: Rig, tag: int, fault: Callable[[], None]) -> Load:
    load = Load(rig, tag)
    took = load.run(fault, after=AFTER)
    settled = converge(rig, load.outcomes)
    print(f"load {took:.1f} s ({load.summary()}); converged {settled:.1f} s after it")
    return load


def test_redis_killed_and_restarted(rig: Rig) -> None:
    def fault() -> None:
        rig.redis.kill()
        time.sleep(OUTAGE_SECONDS)
        rig.redis.start()

    under_load(rig, 1, fault)


def test_postgres_stopped_immediately_and_started(rig: Rig) -> None:
    def fault() -> None:
        rig.pg.stop("immediate")
        time.sleep(OUTAGE_SECONDS)
        rig.pg.start()

    under_load(rig, 2, fault)


@pytest.mark.parametrize("key", ["control", HOST], ids=["control-worker", "host-worker"])
def test_worker_killed_and_restarted(rig: Rig, key: str) -> None:
    def fault() -> None:
        rig.c.kill(key, signal.SIGKILL)
        time.sleep(1)
        rig.restart(key)

    under_load(rig, 3 if key == "control" else 4, fault)


def test_api_killed_during_wait(rig: Rig) -> None:
    def fault() -> None:
        rig.c.kill("api", signal.SIGKILL)
        rig.restart("api")

    load = under_load(rig, 5, fault)
    assert any(o.status is None for o in load.outcomes), "the kill cut no request short"


def test_dropped_nudge(rig: Rig) -> None:
    dropped: list[dict] = []

    def fault() -> None:
        rig.c.signal(HOST, signal.SIGSTOP)
        try:
            dropped.append(rig.drop(host_queue(HOST), APPLY_PORTS))
        finally:
            rig.c.signal(HOST, signal.SIGCONT)

    under_load(rig, 6, fault)
    assert dropped


def test_dropped_report(rig: Rig) -> None:
    dropped: list[dict] = []

    def fault() -> None:
        rig.c.signal("control", signal.SIGSTOP)
        try:
            dropped.append(rig.drop(CONTROL_QUEUE, REPORT_PORTS))
        finally:
            rig.c.signal("control", signal.SIGCONT)

    under_load(rig, 7, fault)
    assert dropped
