"""Overlay deltas, both ends: the control side's table (app.services.overlay.Table) makes
whole states and deltas; the host side (workers.overlay.Tables) applies them to what it
holds and writes the result through a fake kernel boundary (the real one is in
tests/overlay). A delta that does not fit the table held is not written: the host asks for
the whole state."""

from __future__ import annotations

from typing import Any, cast

import pytest

from app.messages import OverlayDelta, OverlayState, read_step
from app.messages.names import SYNC_OVERLAY_DELTA
from app.messages.overlay import entry_hash, remote_sum
from app.models import Network
from app.services.overlay import Table
from workers.kernel import KernelError
from workers.kernel.interface import HostNetwork
from workers.kernel.vxlan import OverlayResult, OverlaySpec
from workers.overlay import Tables

UNDERLAY = {"h0": "10.9.0.1", "h1": "10.9.0.2", "h2": "10.9.0.3"}


class FakeVxlan:
    """The kernel boundary: the last table written per device, and the calls made."""

    def __init__(self) -> None:
        self.tables: dict[str, OverlaySpec] = {}
        self.calls: list[tuple[str, bool]] = []
        self.fail: str | None = None

    def ensure_overlay(
        self, spec: OverlaySpec, allowed: tuple[str, ...], *, full: bool = False
    ) -> OverlayResult:
        self.calls.append((spec.device, full))
        if self.fail:
            raise KernelError(self.fail)
        before = set(self.tables[spec.device].remote) if spec.device in self.tables else set()
        self.tables[spec.device] = spec
        changed = len(before ^ set(spec.remote))
        return OverlayResult(spec.device, not before, len(spec.remote), changed)

    def remote(self) -> dict[str, str]:
        return dict(self.tables["vxn77"].remote)


def network(generation: int = 1) -> Network:
    return Network(
        id=7,
        uuid="0d6f1a55-0000-4000-8000-000000000007",
        name="ov",
        bridge="vbrov",
        generation=generation,
        definition={},
        live={"bridge": {"mac_table_manager": "libvirt"}, "overlay": {"vni": 77}},
    )


def table(entries: dict[str, str], generation: int = 1, **acked: str | None) -> Table:
    """The desired state of network ``ov`` on h0..h2, with guests ``entries`` (MAC -> host)."""
    net = network(generation)
    overlay: dict[str, Any] = {"vni": 77}
    members = {h: acked.get(h) for h in UNDERLAY}
    t = Table(net, overlay, dict(UNDERLAY), members, dict(entries), set(entries.values()))
    for mac, host in entries.items():
        t._sums[host] = t._sums.get(host, 0) + entry_hash(mac, UNDERLAY[host])
        t._total += entry_hash(mac, UNDERLAY[host])
    return t


MACS = {f"52:54:00:00:{h}:{i:02x}": f"h{h}" for h in range(3) for i in range(30)}
NEW = "52:54:00:00:09:01"


@pytest.fixture
def host() -> tuple[Tables, FakeVxlan]:
    """Host h0 holding the whole table of MACS."""
    tables, kernel = Tables(), FakeVxlan()
    report = tables.full(cast(HostNetwork, kernel), table(MACS).state("h0"), "10.9.0.1", host="h0")
    assert report.error is None and report.remote_entries == 60
    return tables, kernel


def apply(tables: Tables, kernel: FakeVxlan, delta: OverlayDelta) -> Any:
    return tables.delta(cast(HostNetwork, kernel), delta, "10.9.0.1", host="h0")


def test_digest_of_a_state_is_the_same_on_both_sides() -> None:
    t = table(MACS)
    for h in UNDERLAY:
        state = t.state(h)
        assert state.computed_digest() == state.digest == t.digest(h)
        assert all(dst != UNDERLAY[h] for _, dst in state.remote)
        assert len(state.remote) == 60
    # the digest follows the table, the head and nothing else
    assert table(MACS).digest("h0") == t.digest("h0")
    assert table({**MACS, NEW: "h1"}).digest("h0") != t.digest("h0")
    assert table({**MACS, NEW: "h0"}).digest("h0") == t.digest("h0")  # a local guest
    assert table(MACS, generation=2).digest("h0") == t.digest("h0")


def test_remote_sum_counts_each_entry_once_in_any_order() -> None:
    pairs = [("52:54:00:00:00:01", "10.9.0.2"), ("52:54:00:00:00:02", "10.9.0.3")]
    assert remote_sum(pairs) == remote_sum(list(reversed(pairs))) == remote_sum(pairs * 2)
    assert remote_sum(pairs) != remote_sum(pairs[:1])


def test_a_plug_elsewhere_arrives_as_one_entry(host: tuple[Tables, FakeVxlan]) -> None:
    tables, kernel = host
    after = table({**MACS, NEW: "h1"})
    delta = after.delta("h0", {NEW})
    assert delta.macs == [NEW] and delta.remote == [(NEW, "10.9.0.2")]
    report = apply(tables, kernel, delta)
    assert not report.resync and report.error is None
    assert report.digest == after.digest("h0") and report.remote_entries == 61
    assert kernel.remote()[NEW] == "10.9.0.2"
    assert sorted(kernel.tables["vxn77"].remote) == after.state("h0").remote
    assert kernel.calls[-1] == ("vxn77", False)  # no read-back of the kernel per change


def test_unplug_pause_and_migration_move_or_drop_the_entry(
    host: tuple[Tables, FakeVxlan],
) -> None:
    tables, kernel = host
    gone = "52:54:00:00:01:05"
    moved = "52:54:00:00:02:07"
    entries = {m: h for m, h in MACS.items() if m != gone}
    entries[moved] = "h1"  # migrated from h2 to h1
    after = table(entries)
    report = apply(tables, kernel, after.delta("h0", {gone, moved}))
    assert not report.resync and report.digest == after.digest("h0")
    assert gone not in kernel.remote() and kernel.remote()[moved] == "10.9.0.2"
    # a guest that moves to this host has no remote entry here any more
    home = table({**entries, moved: "h0"})
    report = apply(tables, kernel, home.delta("h0", {moved}))
    assert not report.resync and moved not in kernel.remote()
    assert sorted(kernel.tables["vxn77"].remote) == home.state("h0").remote


def test_a_lost_delta_is_noticed_by_the_next_and_nothing_is_written(
    host: tuple[Tables, FakeVxlan],
) -> None:
    tables, kernel = host
    first = table({**MACS, NEW: "h1"})
    second = table({**MACS, NEW: "h1", "52:54:00:00:09:02": "h2"})
    lost = first.delta("h0", {NEW})  # never arrives
    assert lost.digest != second.digest("h0")
    calls = len(kernel.calls)
    report = apply(tables, kernel, second.delta("h0", {"52:54:00:00:09:02"}))
    assert report.resync and report.error is None
    assert report.digest == table(MACS).digest("h0")  # what it holds, for the control side
    assert len(kernel.calls) == calls and NEW not in kernel.remote()
    # the whole state it gets then repairs it, and later deltas fit again
    report = tables.full(cast(HostNetwork, kernel), second.state("h0"), "10.9.0.1", host="h0")
    assert report.digest == second.digest("h0") and kernel.remote()[NEW] == "10.9.0.2"
    third = table({**MACS, "52:54:00:00:09:02": "h2"})
    assert not apply(tables, kernel, third.delta("h0", {NEW})).resync
    assert NEW not in kernel.remote()


def test_a_delta_applied_twice_or_late_asks_for_the_whole_state(
    host: tuple[Tables, FakeVxlan],
) -> None:
    tables, kernel = host
    first = table({**MACS, NEW: "h1"})
    second = table({**MACS, NEW: "h1", "52:54:00:00:09:02": "h2"})
    assert not apply(tables, kernel, first.delta("h0", {NEW})).resync
    assert not apply(tables, kernel, first.delta("h0", {NEW})).resync  # redelivered: same
    assert not apply(tables, kernel, second.delta("h0", {"52:54:00:00:09:02"})).resync
    # an older delta, run again after a newer one (a bundle ahead of a gap): not written
    stale = table({**MACS, NEW: "h2"}).delta("h0", {NEW})
    assert apply(tables, kernel, stale).resync
    assert kernel.remote()[NEW] == "10.9.0.2"


def test_a_restarted_worker_or_another_run_of_the_network_asks_for_all() -> None:
    kernel = FakeVxlan()
    report = apply(Tables(), kernel, table({**MACS, NEW: "h1"}).delta("h0", {NEW}))
    assert report.resync and report.digest is None and not kernel.calls
    tables = Tables()
    tables.full(cast(HostNetwork, kernel), table(MACS).state("h0"), "10.9.0.1", host="h0")
    again = table({**MACS, NEW: "h1"}, generation=2).delta("h0", {NEW})
    assert apply(tables, kernel, again).resync


def test_a_failed_write_forgets_the_table_held(host: tuple[Tables, FakeVxlan]) -> None:
    tables, kernel = host
    kernel.fail = "netlink said no"
    after = table({**MACS, NEW: "h1"})
    report = apply(tables, kernel, after.delta("h0", {NEW}))
    assert report.error == "netlink said no"  # the control side records no digest then
    kernel.fail = None
    assert apply(tables, kernel, after.delta("h0", {NEW})).resync
    assert tables.held(7) is None


def test_a_delta_with_an_entry_it_does_not_name_is_refused(
    host: tuple[Tables, FakeVxlan],
) -> None:
    tables, kernel = host
    after = table({**MACS, NEW: "h1"})
    delta = after.delta("h0", {NEW}).model_copy(update={"macs": []})
    assert apply(tables, kernel, delta).resync


def test_peers_and_allowed_travel_whole_in_a_delta(host: tuple[Tables, FakeVxlan]) -> None:
    tables, kernel = host
    only_h1 = {m: h for m, h in MACS.items() if h == "h1"}
    before = table(only_h1)
    tables.full(cast(HostNetwork, kernel), before.state("h0"), "10.9.0.1", host="h0")
    assert kernel.tables["vxn77"].peers == ("10.9.0.2",)
    after = table({**only_h1, NEW: "h2"})
    report = apply(tables, kernel, after.delta("h0", {NEW}))
    assert not report.resync
    assert kernel.tables["vxn77"].peers == ("10.9.0.2", "10.9.0.3")


def test_a_delta_is_a_bundle_step_and_small() -> None:
    t = table({**MACS, NEW: "h1"})
    delta = t.delta("h0", {NEW})
    step = read_step(SYNC_OVERLAY_DELTA, {"delta": delta.wire()})
    assert step.delta == delta  # type: ignore[attr-defined]
    whole = OverlayState.model_validate(t.state("h0").wire())
    assert len(delta.remote) == 1 and len(whole.remote) == 61
    assert len(str(delta.wire())) * 5 < len(str(whole.wire()))


def test_deltas_queued_behind_a_lost_one_ask_once_a_second() -> None:
    now = [100.0]
    tables, kernel = Tables(clock=lambda: now[0]), FakeVxlan()
    tables.full(cast(HostNetwork, kernel), table(MACS).state("h0"), "10.9.0.1", host="h0")
    lost = {**MACS, NEW: "h2"}  # its delta never arrives; each later one builds on it
    backlog = [
        table({**lost, f"52:54:00:00:0a:{i:02x}": "h1"}).delta("h0", {f"52:54:00:00:0a:{i:02x}"})
        for i in range(5)
    ]
    asked = [apply(tables, kernel, d).resync for d in backlog[:4]]
    assert asked == [True, False, False, False]
    now[0] += 1.0
    assert apply(tables, kernel, backlog[4]).resync  # no whole state came: ask again
    whole = table(lost).state("h0")
    tables.full(cast(HostNetwork, kernel), whole, "10.9.0.1", host="h0")
    assert not apply(tables, kernel, backlog[0]).resync  # the backlog fits now
    other = table({**lost, "52:54:00:00:0b:01": "h1"}).delta("h0", {NEW})
    assert apply(tables, kernel, other).resync  # a whole state arrived: asking starts afresh
