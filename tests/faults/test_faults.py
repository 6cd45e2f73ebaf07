"""One fault per test under a load of 200 ports created with ?wait by 8 clients; after it the
system converges by itself within 30 s: no port in flight, no operation running, the kernel as
the database says, and every answer true (issue 10)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.celery_app import APPLY_BUNDLE, APPLY_PORTS, CONTROL_QUEUE, REPORT_PORTS, host_queue
from tests.faults.load import Load, converge, in_doubt
from tests.faults.rig import HOST, Rig

pytestmark = [pytest.mark.kernel, pytest.mark.integration]

#: a fault strikes once this many ports of the 200 are answered
AFTER = 60
OUTAGE_SECONDS = 3


def under_load(rig: Rig, tag: int, fault: Callable[[], None]) -> Load:
    load = Load(rig, tag)
    took = load.run(fault, after=AFTER)
    settled = converge(rig, load.outcomes)
    macs = {row["mac"] for row in rig.sql("SELECT mac FROM ports")}
    doubts = [o for o in load.outcomes if in_doubt(o)]
    made = sum(o.mac in macs for o in doubts)
    print(
        f"\n{tag}: load {took:.1f} s, converged {settled:.1f} s after it; "
        f"in doubt: {len(doubts)}, of which committed: {made}; answers: {load.summary()}"
    )
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


def plugs(message: dict[str, Any]) -> bool:
    """A message that plugs ports: a bundle (a host's revision) with such a step, or the
    step alone."""
    if message["task"] == APPLY_PORTS:
        return True
    steps = message["task"] == APPLY_BUNDLE and message["body"][1].get("steps") or []
    return any(name == APPLY_PORTS for name, _ in steps)


def reports(message: dict[str, Any]) -> bool:
    return message["task"] == REPORT_PORTS


@pytest.mark.parametrize("key", ["control", HOST], ids=["control-worker", "host-worker"])
def test_worker_killed_and_restarted(rig: Rig, key: str) -> None:
    """Killed while it holds a message it took and has not acknowledged: a port report, a
    plug (with a 1 h visibility timeout, kombu would give it to nobody else for an hour)."""
    held: list[dict[str, Any]] = []
    unacked, wanted = (
        ("unacked", reports) if key == "control" else (f"unacked:{host_queue(HOST)}", plugs)
    )

    def fault() -> None:
        held.append(rig.kill_holding(key, unacked, wanted))
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
    dropped: list[dict[str, Any]] = []

    def fault() -> None:
        rig.c.signal(HOST, signal.SIGSTOP)
        try:
            dropped.append(rig.drop(host_queue(HOST), plugs))
        finally:
            rig.c.signal(HOST, signal.SIGCONT)

    under_load(rig, 6, fault)
    assert dropped


def test_dropped_report(rig: Rig) -> None:
    dropped: list[dict[str, Any]] = []

    def fault() -> None:
        rig.c.signal("control", signal.SIGSTOP)
        try:
            dropped.append(rig.drop(CONTROL_QUEUE, reports))
        finally:
            rig.c.signal("control", signal.SIGCONT)

    under_load(rig, 7, fault)
    assert dropped
