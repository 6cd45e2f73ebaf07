"""The control worker's grouping of reports taken along (app.control_batches), with the
recording calls stubbed: heartbeats first, port and revision reports grouped per host in
queue order, any other report alone in its place, and each alone if the group fails. The
transaction itself is proven against PostgreSQL in tests/integration/test_coalescing.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app import control_batches
from app.messages import AppliedReport, PortsReport
from app.messages.names import (
    HEARTBEAT,
    REPORT_APPLIED,
    REPORT_LEASES,
    REPORT_PORTS,
)


class Taken:
    def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
        self.name, self.kwargs = name, kwargs


def result(n: int, state: str = "plugged") -> dict[str, Any]:
    return {
        "port_id": f"p{n}",
        "generation": 1,
        "tap": f"vnet{n}",
        "bridge": "virbr1",
        "guest_mac": f"52:54:00:00:00:0{n}",
        "state": state,
    }


def ports(host: str, *results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return REPORT_PORTS, {"host": host, "results": list(results)}


def applied(host: str, revision: int) -> tuple[str, dict[str, Any]]:
    return REPORT_APPLIED, {"host": host, "revision": revision}


def read(name: str, message: dict[str, Any]) -> PortsReport | AppliedReport | None:
    if message.get("host") == "forged":
        return None
    return (PortsReport if name == REPORT_PORTS else AppliedReport).read(message, name)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.log: list[Any] = []

    def alone(self, name: str, message: dict[str, Any]) -> None:
        self.log.append(("alone", name, message.get("host")))

    def record(self, call: Callable[[Any], None]) -> None:
        group = call.__self__  # type: ignore[attr-defined]
        assert isinstance(group, control_batches.Group)
        if self.fail:
            raise RuntimeError("the database said no")
        ports = {h: [r["port_id"] for r in rs] for h, rs in group.ports.items()}
        self.log.append(("group", ports, dict(group.applied)))

    def recorded(self, results: dict[str, list[dict[str, Any]]]) -> None:
        self.log.append(("latency", {h: [r["port_id"] for r in rs] for h, rs in results.items()}))


def run(
    first: tuple[str, dict[str, Any]], *rest: tuple[str, dict[str, Any]], fail: bool = False
) -> list[Any]:
    recorder = Recorder(fail)
    control_batches.handle(
        first,
        [Taken(n, kw) for n, kw in rest],
        read=read,
        alone=recorder.alone,
        record=recorder.record,
        recorded=recorder.recorded,
    )
    return recorder.log


def test_heartbeats_first_then_reports_grouped_per_host_in_order() -> None:
    log = run(
        ports("h1", result(1)),
        applied("h1", 1),
        (HEARTBEAT, {"host": "h1"}),
        ports("h2", result(2)),
        ports("h1", result(3), result(1, "absent")),
        applied("h1", 2),
        applied("h2", 7),
        (HEARTBEAT, {"host": "h2"}),
    )
    assert log == [
        ("alone", HEARTBEAT, "h1"),
        ("alone", HEARTBEAT, "h2"),
        ("group", {"h1": ["p1", "p3", "p1"], "h2": ["p2"]}, {"h1": 2, "h2": 7}),
        # after the group's commit, on their own: the plug and unplug times
        ("latency", {"h1": ["p1", "p3", "p1"], "h2": ["p2"]}),
    ]


def test_another_report_is_recorded_alone_in_its_place() -> None:
    log = run(
        ports("h1", result(1)),
        applied("h1", 1),
        (REPORT_LEASES, {"host": "h1"}),
        ports("h1", result(2)),
    )
    assert log == [
        ("group", {"h1": ["p1"]}, {"h1": 1}),
        ("latency", {"h1": ["p1"]}),
        ("alone", REPORT_LEASES, "h1"),
        ("alone", REPORT_PORTS, "h1"),  # a group of one: as before
    ]


def test_a_forged_report_is_left_out_of_the_group() -> None:
    log = run(ports("h1", result(1)), ports("forged", result(2)), applied("h1", 3))
    assert log == [("group", {"h1": ["p1"]}, {"h1": 3}), ("latency", {"h1": ["p1"]})]


def test_a_group_that_fails_is_recorded_report_by_report() -> None:
    log = run(ports("h1", result(1)), applied("h1", 1), fail=True)
    # no latency of its own: recording the port report alone counts its times
    assert log == [("alone", REPORT_PORTS, "h1"), ("alone", REPORT_APPLIED, "h1")]


def test_a_ports_report_that_carries_its_revision_is_one_transaction() -> None:
    name, message = ports("h1", result(1))
    log = run((name, {**message, "applied": 4}))
    assert log == [("group", {"h1": ["p1"]}, {"h1": 4}), ("latency", {"h1": ["p1"]})]
    # a later revision report of the same host is where it is now
    log = run((name, {**message, "applied": 4}), applied("h1", 5))
    assert log == [("group", {"h1": ["p1"]}, {"h1": 5}), ("latency", {"h1": ["p1"]})]


@pytest.mark.parametrize("first", [ports("h1", result(1)), applied("h1", 1)])
def test_one_report_alone_is_recorded_as_before(first: tuple[str, dict[str, Any]]) -> None:
    assert run(first) == [("alone", first[0], "h1")]
