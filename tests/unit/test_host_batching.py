"""Bundles drained from the queue run as one batch (workers.batching): on the fake kernel,
one plug_many and one unplug_many for the lot, the last state of a port wins, one ports
report and one applied report, and the same revision and kernel state as one by one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from app.celery_app import APPLY_BUNDLE, APPLY_PORTS, REPORT_PORTS
from app.messages import Bundle
from tests.unit.test_host_agent import NETWORK, agent, port
from tests.unit.test_host_revisions import applied, bundle, plug, taps
from workers import batching
from workers.kernel.fake import FakeHostNet


class Counted(FakeHostNet):
    """The fake kernel, counting its batches."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, list[str]]] = []

    def plug_many(self, specs: Any, *, check_qos: bool = False) -> list[Exception | None]:
        self.batches.append(("plug", [s.tap for s in specs]))
        return super().plug_many(specs, check_qos=check_qos)

    def unplug_many(self, refs: Any) -> list[bool | Exception]:
        self.batches.append(("unplug", [r.tap for r in refs]))
        return super().unplug_many(refs)


def setup() -> tuple[Any, Counted, Any]:
    host, _, reports = agent()
    net = Counted()
    host._open_network = lambda: net
    host._net = None
    host.realise(NETWORK)
    reports.clear()
    return host, net, reports


def many(*bundles: dict[str, Any]) -> list[Bundle]:
    return [Bundle.read(b) for b in bundles]


def results(reports: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for name, kw in reports if name == REPORT_PORTS for r in kw["results"]]


def test_a_drained_lot_is_one_kernel_batch_and_one_report_each() -> None:
    host, net, reports = setup()
    host.apply_many(
        many(
            bundle(0, 1, plug(port(1), port(2))),
            bundle(1, 2, plug(port(3))),
            bundle(2, 3, plug(port(1, present=False, generation=2), port(4))),
        )
    )
    assert taps(net) == {"vnet2", "vnet3", "vnet4"}
    assert net.batches == [("unplug", ["vnet1"]), ("plug", ["vnet2", "vnet3", "vnet4"])]
    assert [name for name, _ in reports] == [REPORT_PORTS]  # with the revision in it
    assert applied(reports) == [3]
    # the later state of port 1 wins: it is reported absent, at its later generation
    by_tap = {r["tap"]: (r["state"], r["generation"]) for r in results(reports)}
    assert by_tap == {
        "vnet1": ("absent", 2),
        "vnet2": ("plugged", 1),
        "vnet3": ("plugged", 1),
        "vnet4": ("plugged", 1),
    }


def test_a_port_that_fails_in_the_batch_is_reported_failed_the_others_plugged() -> None:
    host, net, reports = setup()
    lost = {**port(2), "bridge": "nosuchbr"}
    host.apply_many(many(bundle(0, 1, plug(port(1))), bundle(1, 2, plug(lost, port(3)))))
    states = {r["tap"]: r["state"] for r in results(reports)}
    assert states == {"vnet1": "plugged", "vnet2": "failed", "vnet3": "plugged"}
    failed = next(r for r in results(reports) if r["tap"] == "vnet2")
    assert "nosuchbr" in failed["error"] and failed["error_code"] == "bridge_missing"
    assert taps(net) == {"vnet1", "vnet3"}
    assert applied(reports) == [2]  # a port refused by the kernel is a result, not a failure


def test_a_step_that_raises_keeps_the_revision_where_the_batch_started() -> None:
    host, net, reports = setup()
    host.apply(**bundle(0, 1, plug(port(1))))
    reports.clear()
    broken = [APPLY_PORTS, {"ports": "not a list"}]
    host.apply_many(many(bundle(1, 2, plug(port(2))), bundle(2, 3, broken)))
    assert taps(net) == {"vnet1", "vnet2"}  # the rest ran
    assert applied(reports) == [1]  # which bundle failed is not known: the resync repairs


def test_revisions_out_of_order_duplicates_and_a_full_resend_in_one_batch() -> None:
    host, net, reports = setup()
    host.apply_many(
        many(
            bundle(1, 2, plug(port(1, present=False, generation=2))),  # ahead of 1
            bundle(0, 1, plug(port(1))),  # fills the gap: 2 runs again after it
            bundle(0, 1, plug(port(1))),  # a duplicate: skipped
        )
    )
    assert taps(net) == set()  # revision 2's state (port 1 gone) wins over 1's
    assert applied(reports) == [2]
    reports.clear()
    reconcile = ["virtnet.host.reconcile", {"networks": [NETWORK], "ports": [port(5)]}]
    host.apply_many(
        many(bundle(4, 5, plug(port(6))), bundle(3, 4, reconcile, full=True), bundle(1, 2))
    )
    assert taps(net) == {"vnet5", "vnet6"}
    assert applied(reports) == [5]


def random_bundles(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Revisions 1..count, each plugging or unplugging a few of 6 ports, then shuffled a
    little, some lost, some twice, and a full resend here and there."""
    state: dict[int, tuple[bool, int]] = {}
    made = []
    for revision in range(1, count + 1):
        ports = []
        for n in rng.sample(range(1, 7), rng.randint(1, 3)):
            present, generation = state.get(n, (False, 0))
            state[n] = (not present, generation + 1)
            ports.append(port(n, present=not present, generation=generation + 1))
        if rng.random() < 0.15:
            whole = [port(n, present=p, generation=g) for n, (p, g) in state.items()]
            step = ["virtnet.host.reconcile", {"networks": [NETWORK], "ports": whole}]
            made.append(bundle(revision - 1, revision, step, full=True))
        else:
            made.append(bundle(revision - 1, revision, plug(*ports)))
    out = []
    for b in made:
        if rng.random() < 0.1:
            continue  # lost
        out.append(b)
        if rng.random() < 0.1:
            out.append(b)  # delivered twice
    for i in range(len(out) - 1):
        if rng.random() < 0.2:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


@pytest.mark.parametrize("seed", range(40))
def test_a_batch_reaches_the_revision_and_kernel_state_of_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    sequence = random_bundles(rng, 12)
    one, one_net, one_reports = setup()
    for b in sequence:
        one.apply(**b)
    lot, lot_net, lot_reports = setup()
    cut = sorted(rng.sample(range(1, len(sequence)), min(2, len(sequence) - 1)))
    for start, end in zip([0, *cut], [*cut, len(sequence)], strict=True):
        lot.apply_many(many(*sequence[start:end]))
    assert lot.applied == one.applied
    assert taps(lot_net) == taps(one_net)
    assert applied(lot_reports)[-1] == applied(one_reports)[-1]
    assert len(lot_net.batches) <= len(one_net.batches)


def test_taken_messages_run_in_queue_order_with_single_steps_between() -> None:
    host, net, reports = setup()

    class Taken:
        def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
            self.name, self.kwargs = name, kwargs

    first = Bundle.read(bundle(0, 1, plug(port(1))))
    batching.handle(
        host,
        first,
        [
            Taken(APPLY_BUNDLE, bundle(1, 2, plug(port(2)))),
            Taken(APPLY_PORTS, {"ports": [port(2, present=False, generation=2)]}),
            Taken(APPLY_BUNDLE, {"base": "bad"}),  # refused, the rest goes on
            Taken("virtnet.unknown", {}),
            Taken(APPLY_BUNDLE, bundle(2, 3, plug(port(3)))),
        ],
    )
    assert taps(net) == {"vnet1", "vnet3"}
    assert [name for name, _ in reports] == [REPORT_PORTS] * 3
    assert applied(reports) == [2, 3]
