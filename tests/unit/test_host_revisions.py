"""The host agent's revision bookkeeping (app.services.intent): a bundle moves the host to
its revision only on top of the one before; a full bundle resets it; an older one is not
run again. The kernel state is read back from the fake kernel."""

from __future__ import annotations

from typing import Any

from app.celery_app import APPLY_PORTS, RECONCILE_HOST, REPORT_APPLIED, REPORT_PORTS
from tests.unit.test_host_agent import NETWORK, agent, port
from workers.kernel.fake import FakeHostNet


def bundle(base: int, revision: int, *steps: list[Any], full: bool = False) -> dict[str, Any]:
    return {"base": base, "revision": revision, "full": full, "steps": list(steps)}


def plug(*ports: dict[str, Any]) -> list[Any]:
    return [APPLY_PORTS, {"ports": list(ports)}]


def taps(net: FakeHostNet) -> set[str]:
    return {d.name for d in net.devices.values() if d.kind == "tap"}


def applied(reports: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """The revisions the host said it reached: on their own, or in a ports report."""
    said = [
        kw.get("revision") if name == REPORT_APPLIED else kw.get("applied") for name, kw in reports
    ]
    return [r for r in said if r is not None]


def setup() -> tuple[Any, FakeHostNet, Any]:
    host, net, reports = agent()
    host.realise(NETWORK)
    reports.clear()
    return host, net, reports


def test_bundles_in_order_advance_the_revision_after_their_reports() -> None:
    host, net, reports = setup()
    host.apply(**bundle(0, 1, plug(port(1))))
    host.apply(**bundle(1, 2, plug(port(2))))
    assert taps(net) == {"vnet1", "vnet2"}
    assert host.applied == 2
    # each revision in the ports report of its batch: one message, after the kernel's work
    assert [name for name, _ in reports] == [REPORT_PORTS] * 2
    assert applied(reports) == [1, 2]


def test_a_gap_keeps_the_revision_until_a_full_bundle() -> None:
    host, net, reports = setup()
    host.apply(**bundle(0, 1, plug(port(1))))
    # revision 2 was lost: 3 still runs (its state is whole) but the host stays at 1
    host.apply(**bundle(2, 3, plug(port(3))))
    assert taps(net) == {"vnet1", "vnet3"}
    assert applied(reports) == [1, 1]
    # the periodic pass: the whole state, snapshot at 3, as revision 4
    reconcile = [RECONCILE_HOST, {"networks": [NETWORK], "ports": [port(1), port(2), port(3)]}]
    host.apply(**bundle(3, 4, reconcile, full=True))
    assert taps(net) == {"vnet1", "vnet2", "vnet3"}
    assert host.applied == 4
    host.apply(**bundle(4, 5, plug(port(4))))
    assert applied(reports)[-1] == 5


def test_a_full_bundle_raced_by_another_transaction_claims_only_its_snapshot() -> None:
    host, _, reports = setup()
    host.apply(**bundle(0, 1, plug(port(1))))
    # snapshot read at 1, but revision 2 went to another transaction meanwhile
    host.apply(**bundle(1, 3, [RECONCILE_HOST, {"networks": [NETWORK], "ports": []}], full=True))
    assert host.applied == 1
    assert applied(reports)[-1] == 1


def test_a_full_bundle_resets_a_host_that_is_ahead() -> None:
    host, net, reports = setup()
    for r in range(1, 8):
        host.apply(**bundle(r - 1, r, plug(port(1))))
    # the database was restored from a backup: its next full state is revision 3
    host.apply(**bundle(2, 3, [RECONCILE_HOST, {"networks": [NETWORK], "ports": []}], full=True))
    assert host.applied == 3 and taps(net) == set()


def test_a_duplicate_or_older_bundle_is_not_run_again() -> None:
    host, net, reports = setup()
    host.apply(**bundle(0, 1, plug(port(1))))
    host.apply(**bundle(1, 2, plug(port(1, present=False, generation=2))))
    assert taps(net) == set()
    reports.clear()
    # revision 1 delivered again (redelivery): it would bring back the tap of a removed port
    host.apply(**bundle(0, 1, plug(port(1))))
    host.apply(**bundle(1, 2, plug(port(1, present=False, generation=2))))
    assert taps(net) == set()
    assert reports == [(REPORT_APPLIED, {"host": "h1", "revision": 2})] * 2


def test_a_worker_that_starts_again_starts_from_zero() -> None:
    _, net, _ = setup()
    host, _, reports = agent()
    host._net = net  # the same kernel, a new worker
    host.apply(**bundle(6, 7, plug(port(2))))
    assert host.applied == 0 and "vnet2" in taps(net)
    assert applied(reports) == [0]


def test_a_bundle_that_overtook_its_predecessor_runs_again_after_it() -> None:
    host, net, reports = setup()
    # revision 1 plugs port 1, revision 2 removes it: 2 arrives first
    host.apply(**bundle(1, 2, plug(port(1, present=False, generation=2))))
    assert host.applied == 0
    host.apply(**bundle(0, 1, plug(port(1))))
    assert host.applied == 2
    assert taps(net) == set()  # 1 ran last, but 2 ran again on top of it
    assert applied(reports) == [0, 2]


def test_bundles_that_came_before_a_full_bundle_run_again_on_top_of_it() -> None:
    host, net, reports = setup()
    # revision 3 was committed after the periodic pass read revision 2 (its snapshot),
    # but reached the host first
    host.apply(**bundle(2, 3, plug(port(2))))
    reconcile = [RECONCILE_HOST, {"networks": [NETWORK], "ports": [port(1)]}]
    host.apply(**bundle(1, 2, reconcile, full=True))
    assert host.applied == 3
    assert taps(net) == {"vnet1", "vnet2"}
