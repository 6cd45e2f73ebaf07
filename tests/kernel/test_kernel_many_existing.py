"""Plugging again many taps that exist (a reconcile): from links.DUMP_FROM on they are read
in one dump instead of a look-up each, with the same outcome per tap."""

from __future__ import annotations

import dataclasses

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, DeviceConflict, HostNet, PortSpec, links

pytestmark = [pytest.mark.kernel, requires_root]


def test_many_existing_taps_are_adopted_from_one_dump(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("vnmbr", "net", mtu=1500, stp=False))
    n = links.DUMP_FROM + 8
    specs = [
        PortSpec(f"vnm{i}", "vnmbr", f"52:54:00:4d:{i >> 8:02x}:{i & 0xFF:02x}", f"o{i}")
        for i in range(n)
    ]
    assert host.plug_many(specs) == [None] * n
    rb.ip(ns, "link", "set", "vnm3", "nomaster")  # drifted: the second pass repairs it
    rb.ip(ns, "link", "add", "vnmx", "type", "bridge")  # not ours: refused, never adopted
    again = [*specs, PortSpec("vnmx", "vnmbr", "52:54:00:4d:ff:ff", "ox")]
    errors = host.plug_many(again)
    assert errors[:n] == [None] * n
    assert isinstance(errors[n], DeviceConflict)
    taps = rb.taps(ns)
    assert len(taps) == n and all(t.get("master") == "vnmbr" for t in taps.values())
    assert "vnmx" in rb.links(ns) and rb.links(ns)["vnmx"].get("master") is None
    # another owner's tap under a wanted name is refused too
    other = dataclasses.replace(specs[5], owner="someone-else")
    assert isinstance(host.plug_many([*specs[:5], other, *specs[6:]])[5], DeviceConflict)
