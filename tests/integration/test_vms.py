"""Two tiny QEMU guests (TCG) on virtnet's taps, attached with `virtnet qemu-args`: they
ping each other, a suspended guest is cut off and comes back, and a stop without force
leaves the tap its QEMU holds alone."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.cli import qemu
from tests import guests
from tests.cluster import Cluster
from tests.integration.conftest import GUEST_LV
from tests.kernel import readback

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(guests.available() is not None, reason=str(guests.available())),
]
MACS = ("52:54:00:e0:00:01", "52:54:00:e0:00:02")


@pytest.fixture(scope="module")
def boot_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[tuple[Path, Path]]]:
    """The kernel and initramfs, made in a thread while the cluster starts (lzma lets go
    of the GIL)."""
    where = tmp_path_factory.mktemp("guest")

    def make() -> tuple[Path, Path]:
        return guests.extract_vmlinux(where / "vmlinux"), guests.build_initramfs(where / "initrd")

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(make)


@pytest.fixture
def running(
    boot_files: Future[tuple[Path, Path]], cluster: Cluster, guest_host: str
) -> Iterator[list[guests.Guest]]:
    """vm1 and vm2 defined, started and booted in parallel on their taps."""
    for n, mac in enumerate(MACS, start=1):
        body = {
            "name": f"vm{n}",
            "type": "qemu",
            "host": "h1",
            "interfaces": [
                {"type": "network", "source": {"network": "lv"}, "mac": mac, "model": "virtio"}
            ],
        }
        assert cluster.api.post("/v1/domains", json=body).status_code == 201
        act(cluster, f"vm{n}/start")
    booted: list[guests.Guest] = []
    try:
        for n in (1, 2):
            domain = cluster.api.get(f"/v1/domains/vm{n}").json()
            (line,) = qemu.arguments(domain, vhost=os.path.exists("/dev/vhost-net"))
            line[-1] += ",romfile="  # no iPXE option ROM: nothing boots from the network
            files = boot_files.result()
            booted.append(guests.Guest(guest_host, *files, f"10.79.0.{n}/24", line))
        for guest in booted:
            guest.wait_ready(180)  # ~20 s on an idle machine; TCG starves under load
        yield booted
    finally:
        for guest in booted:
            guest.close()


def act(cluster: Cluster, path: str, expect: int = 200) -> dict[str, Any]:
    r = cluster.api.post(f"/v1/domains/{path}?wait=30")
    assert r.status_code == expect, r.text
    return dict(r.json())


def ping(guest: guests.Guest, address: str, count: int = 1) -> bool:
    code, out = guest.run(f"ping -c {count} -W 2 {address}", timeout=30)
    return code == 0


def test_two_vms_ping_pause_and_keep_their_held_taps(
    cluster: Cluster, guest_host: str, running: list[guests.Guest]
) -> None:
    vm1, vm2 = running
    taps = [cluster.api.get(f"/v1/domains/vm{n}").json()["interfaces"][0] for n in (1, 2)]
    tap2 = taps[1]["actual"]["tap"]
    assert taps[1]["actual"]["device"] == "tap" and taps[1]["actual"]["bridge"] == GUEST_LV
    assert ping(vm1, "10.79.0.2", count=2)

    act(cluster, "vm2/suspend")
    assert readback.static_entries(guest_host, MACS[1]) == []
    assert not ping(vm1, "10.79.0.2")
    act(cluster, "vm2/resume")
    assert ping(vm1, "10.79.0.2")

    # QEMU holds vm2's tap: a stop without force is refused and changes nothing
    problem = act(cluster, "vm2/stop", expect=409)
    assert tap2 in problem["detail"] and "in use" in problem["detail"]
    assert tap2 in readback.links(guest_host)
    vm2_view = cluster.api.get("/v1/domains/vm2").json()
    assert vm2_view["status"]["state"] == "running"
    assert vm2_view["interfaces"][0]["actual"]["state"] == "plugged"
    r = cluster.api.delete(f"/v1/domains/vm2/interfaces/{MACS[1]}?wait=30")
    assert r.status_code == 409 and tap2 in r.json()["detail"], r.text
    assert [i["mac"] for i in cluster.api.get("/v1/domains/vm2").json()["interfaces"]] == [MACS[1]]
    assert ping(vm1, "10.79.0.2")

    # once its QEMU is gone the tap is free, and the same stop goes through
    vm2.close()
    deadline = time.monotonic() + 10
    while readback.links(guest_host)[tap2].get("operstate") not in ("DOWN", "LOWERLAYERDOWN"):
        assert time.monotonic() < deadline, "tap kept its carrier after QEMU exited"
        time.sleep(0.1)
    assert act(cluster, "vm2/stop")["state"] == "succeeded"
    assert tap2 not in readback.links(guest_host)
    # with force, a held tap goes too
    r = cluster.api.post("/v1/domains/vm1/stop?force=true&wait=30")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert taps[0]["actual"]["tap"] not in readback.links(guest_host)
