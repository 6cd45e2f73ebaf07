"""Desired bandwidth state, made true idempotently: compare what tc shows, rebuild what differs.

A port's limits live on its own device (and its IFB device); a network's on its bridge, where
each port with a ``floor`` adds a class 1:<id> under 1:1 and a filter on its MAC, and the
shared class 1:2 gives up what the floors guarantee (libvirt's networkPlugBandwidth).
"""

from __future__ import annotations

import errno

from .errors import KernelError
from .qos import (
    FIRST_FLOOR_CLASS,
    IFB,
    KBYTE,
    POLICE,
    ROOT,
    Tc,
    class_handle,
    filter_handle,
    ifb_name,
    require,
)
from .specs import Bandwidth, Floor, Rate


def _average(rate: Rate | None) -> int | None:
    return rate.average if rate is not None else None


def _egress_matches(tc: Tc, index: int, rate: Rate | None, hierarchical: bool) -> bool:
    ours = tc.root_kind(index) == "htb"
    if not _average(rate):
        return not ours
    assert rate is not None and rate.average
    if not ours:
        return False
    classes = tc.htb_classes(index)
    top = (rate.peak or rate.average) * KBYTE
    first = rate.average * KBYTE if hierarchical else top
    one, two = classes.get(class_handle(1)), classes.get(class_handle(2))
    if one is None or two is None or one[1:] != (first, top) or two[2] != top:
        return False
    return hierarchical or two[1] == rate.average * KBYTE


def _ingress_mode(tc: Tc, index: int, owner: str, rate: Rate | None) -> tuple[bool, str | None]:
    """Whether the ingress side is as wanted, and how it is limited."""
    has_ingress = bool(tc.ingress_filters(index))
    if not _average(rate):
        return not has_ingress and not tc.index(ifb_name(owner)), None
    assert rate is not None and rate.average
    if not has_ingress:
        return False, None
    ifb = tc.index(ifb_name(owner))
    if not ifb:
        return True, POLICE
    one = tc.htb_classes(ifb).get(class_handle(1))
    top = (rate.peak or rate.average) * KBYTE
    return one is not None and one[1:] == (rate.average * KBYTE, top), IFB


def ensure_port(tc: Tc, device: str, owner: str, bandwidth: Bandwidth | None) -> str | None:
    """Make ``device`` (a guest's bridge port) carry ``bandwidth``; returns how the outbound
    side is limited ('police', 'ifb') or None. Nothing changes when it already does."""
    what = f"setting bandwidth on {device}"
    index = require(tc.index(device), device, what)
    inbound = bandwidth.inbound if bandwidth else None
    outbound = bandwidth.outbound if bandwidth else None
    ingress_ok, mode = _ingress_mode(tc, index, owner, outbound)
    if ingress_ok and _egress_matches(tc, index, inbound, hierarchical=False):
        return mode
    tc.clear(index)
    if not _average(outbound):
        tc.remove_ifb(owner)
    if _average(inbound):
        assert inbound is not None
        tc.egress(index, inbound, hierarchical=False, what=what)
    if _average(outbound):
        assert outbound is not None
        mode = tc.ingress(index, owner, outbound, what)
        if mode == POLICE:
            tc.remove_ifb(owner)
        return mode
    return None


def clear_port(tc: Tc, owner: str) -> None:
    """What outlives a port's device: its IFB device (qdiscs go with the device)."""
    tc.remove_ifb(owner)


def ensure_bridge(tc: Tc, bridge: str, owner: str, bandwidth: Bandwidth | None) -> str | None:
    """A network's own limits on its bridge (hierarchical, as libvirt's network start)."""
    what = f"setting bandwidth on bridge {bridge}"
    index = require(tc.index(bridge), bridge, what)
    inbound = bandwidth.inbound if bandwidth else None
    outbound = bandwidth.outbound if bandwidth else None
    ingress_ok, mode = _ingress_mode(tc, index, owner, outbound)
    egress_ok = _egress_matches(tc, index, inbound, hierarchical=True)
    if not ingress_ok or not egress_ok:
        tc.clear(index)
        if not _average(outbound):
            tc.remove_ifb(owner)
        mode = None
        if _average(inbound):
            assert inbound is not None
            tc.egress(index, inbound, hierarchical=True, what=what)
        if _average(outbound):
            assert outbound is not None
            mode = tc.ingress(index, owner, outbound, what)
    if _average(inbound):
        _share_rest(tc, index)
    return mode


def floor_classes(
    tc: Tc, index: int, classes: dict[int, tuple[int, int, int]] | None = None
) -> dict[int, int]:
    """class id -> floor (kilobytes per second) of every floor class on a bridge."""
    classes = tc.htb_classes(index) if classes is None else classes
    return {
        handle & 0xFFFF: rate // KBYTE
        for handle, (parent, rate, _ceil) in classes.items()
        if parent == class_handle(1) and handle & 0xFFFF >= FIRST_FLOOR_CLASS
    }


def _share_rest(tc: Tc, index: int, classes: dict[int, tuple[int, int, int]] | None = None) -> None:
    """Class 1:2 (every port without a floor) gets what the floors leave of the limit.
    ``classes``, when given, is the bridge's classes as they are now (one dump fewer)."""
    classes = tc.htb_classes(index) if classes is None else classes
    one, two = classes.get(class_handle(1)), classes.get(class_handle(2))
    if one is None or two is None:
        return
    average, top = one[1] // KBYTE, one[2] // KBYTE
    floors = sum(floor_classes(tc, index, classes).values())
    rate = top - floors if floors else average
    if two[1] != max(rate, 1) * KBYTE:
        tc.update_rate(index, 2, rate, top, average)


def ensure_floor(tc: Tc, bridge: str, floor: Floor) -> None:
    what = f"setting floor for {floor.mac} on bridge {bridge}"
    index = require(tc.index(bridge), bridge, what)
    classes = tc.htb_classes(index)
    one = classes.get(class_handle(1))
    if one is None:
        raise KernelError(
            f"Bridge '{bridge}' has no QoS set, therefore unable to set 'floor' on '{floor.mac}'",
            errno.EOPNOTSUPP,
        )
    ceil = one[2]
    handle = class_handle(floor.class_id)
    wanted = (class_handle(1), floor.floor * KBYTE, ceil)
    have = classes.get(handle)
    if have != wanted or not _has_filter(tc, index, floor):
        if have is not None:
            tc.unplug_floor(index, floor.class_id)
        try:
            tc.plug_floor(index, floor, ceil // KBYTE)
        except KernelError:  # a stale filter or leaf without its class: clear, try again
            tc.unplug_floor(index, floor.class_id)
            tc.plug_floor(index, floor, ceil // KBYTE)
        classes[handle] = wanted
    _share_rest(tc, index, classes)


def _has_filter(tc: Tc, index: int, floor: Floor) -> bool:
    wanted = filter_handle(floor.class_id)
    return any(int(f["handle"]) == wanted for f in tc.ipr.get_filters(index=index, parent=ROOT))


def remove_floors(
    tc: Tc, bridge: str, class_ids: set[int] | None = None, *, keep: set[int] | None = None
) -> list[int]:
    """Remove the floor classes ``class_ids`` (or all but ``keep``); returns those removed."""
    index = tc.index(bridge)
    if not index:
        return []
    classes = tc.htb_classes(index)
    present = set(floor_classes(tc, index, classes))
    doomed = present & class_ids if class_ids is not None else present - (keep or set())
    for class_id in sorted(doomed):
        tc.unplug_floor(index, class_id)
        classes.pop(class_handle(class_id), None)
    if doomed:
        _share_rest(tc, index, classes)
    return sorted(doomed)
