"""A worker killed while creating taps leaves nothing behind that virtnet would refuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel import readback
from workers.kernel import HostNet, PortSpec

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parents[2]

KILLED_MID_CREATE = """
import os, signal
from workers.kernel.nsexec import TapRequest, open_new_taps
fds = open_new_taps([TapRequest(f"vnet{i}", True, False, None, None, True) for i in range(3)])
assert all(fd >= 0 for fd in fds), fds
os.kill(os.getpid(), signal.SIGKILL)  # before the alias is set and the taps made persistent
"""


def test_taps_of_a_killed_creator_vanish(ns: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", KILLED_MID_CREATE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -9, done.stderr
    assert not [n for n in readback.links(ns) if n.startswith("vnet")]


def test_plugged_taps_are_persistent_and_marked(host: HostNet, ns: str) -> None:
    from workers.kernel import BridgeSpec

    host.ensure_bridge(BridgeSpec("brc", "test", stp=False))
    specs = [PortSpec(f"vnet{i}", "brc", f"52:54:00:00:0c:0{i}", f"port-{i}") for i in range(3)]
    assert host.plug_many(specs) == [None, None, None]
    found = readback.links(ns)
    for spec in specs:
        assert found[spec.tap]["ifalias"] == f"virtnet:{spec.owner}"
        assert found[spec.tap]["master"] == "brc"


def test_bridge_left_unlabelled_by_a_killed_worker_is_still_ours(host: HostNet, ns: str) -> None:
    from workers.kernel import BridgeSpec
    from workers.kernel.specs import CREATING_GROUP

    # what a worker killed between creating a bridge and labelling it leaves behind
    readback.ip(ns, "link", "add", "brhalf", "group", str(CREATING_GROUP), "type", "bridge")
    readback.ip(ns, "link", "add", "brforeign", "type", "bridge")
    owned = {d.name: d.owner for d in host.owned_devices()}
    assert owned.get("brhalf") == "" and "brforeign" not in owned
    result = host.ensure_bridge(BridgeSpec("brhalf", "net-1", stp=False))
    assert result.created
    link = readback.links(ns)["brhalf"]
    assert link["ifalias"] == "virtnet:net-1" and link.get("group") in (None, "default", 0)
    # one nobody wants any more is removed by reconcile like any device virtnet owns
    readback.ip(ns, "link", "add", "brgone", "group", str(CREATING_GROUP), "type", "bridge")
    assert host.remove_bridge("brgone", "") is True
    assert "brgone" not in readback.links(ns) and "brforeign" in readback.links(ns)
