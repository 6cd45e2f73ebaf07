"""A host's dnsmasq processes and rule tables: adopted by a new worker, restarted, reconciled."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from app.conf.network.dnsmasq import render
from app.conf.network.firewall import firewall_spec
from app.conf.network.model import NetworkDefinition
from app.messages import NetworkSpec
from tests import ipguests as guests
from tests.cluster import wait_for
from tests.kernel.conftest import requires_root
from workers import network_services
from workers.kernel import BridgeSpec, HostNet, KernelError
from workers.kernel.dnsmasq import DnsmasqSpec

pytestmark = [pytest.mark.kernel, requires_root]


def spec(name: str, uuid: str, bridge: str, subnet: int) -> NetworkSpec:
    d = NetworkDefinition.model_validate(
        {
            "name": name,
            "forward": {"mode": "nat"},
            "ips": [
                {
                    "address": f"10.{subnet}.0.1",
                    "prefix": 24,
                    "dhcp": {"ranges": [{"start": f"10.{subnet}.0.9", "end": f"10.{subnet}.0.99"}]},
                }
            ],
        }
    )
    return NetworkSpec.read(
        {
            "network_id": subnet,
            "generation": 1,
            "name": name,
            "uuid": uuid,
            "mode": "nat",
            "bridge": bridge,
            "ips": [f"10.{subnet}.0.1/24"],
            "dnsmasq": dataclasses.asdict(render(d, bridge)),
            "firewall": firewall_spec(d, uuid, bridge),
            "ip_forwarding": [4],
        }
    )


def test_adopted_restarted_and_reconciled(ns: str, tmp_path: Path) -> None:
    guests.traversable(tmp_path)
    a = spec("a", "00000000-0000-0000-0000-00000000000a", "vnbra", 41)
    b = spec("b", "00000000-0000-0000-0000-00000000000b", "vnbrb", 42)
    try:
        with HostNet(ns, tmp_path) as net:
            for s in (a, b):
                net.ensure_bridge(BridgeSpec(s.bridge, s.uuid))
                network_services.realise(net, s)
            assert len(guests.dnsmasq_pids(ns)) == 2
            assert len(net.firewall_tables()) == 2
            assert net.dnsmasq is not None
            pid_a = net.dnsmasq.pid(a.uuid)
            assert pid_a is not None
        # a new worker (a new HostNet on the same state dir) adopts, not duplicates
        with HostNet(ns, tmp_path) as net:
            assert net.dnsmasq is not None
            network_services.realise(net, a)
            assert net.dnsmasq.pid(a.uuid) == pid_a
            os.kill(pid_a, signal.SIGKILL)
            supervisor = net.dnsmasq
            assert wait_for(supervisor.watch, timeout=2, what="restart") == [a.uuid]
            pid_a = net.dnsmasq.pid(a.uuid)
            assert pid_a is not None
            # reconcile with only 'a' wanted: b's dnsmasq, files and table go, a's stay
            network_services.reconcile(net, [a])
            assert guests.dnsmasq_pids(ns) == [pid_a]
            assert net.firewall_tables() == {a.firewall["table"]}
            assert net.dnsmasq.keys() == {a.uuid}
            network_services.remove(net, a)
            assert guests.dnsmasq_pids(ns) == [] and net.firewall_tables() == set()
            assert net.dnsmasq.keys() == set()
    finally:
        guests.kill_dnsmasqs(ns)


def test_a_dnsmasq_killed_is_restarted_at_once_every_time(ns: str, tmp_path: Path) -> None:
    # A process SIGKILLed frees its memory before its sockets: a restart in that window got
    # "Address already in use" (2 of 3 tries here) and the supervisor raised instead.
    guests.traversable(tmp_path)
    a = spec("a", "00000000-0000-0000-0000-00000000000a", "vnbra", 41)
    try:
        with HostNet(ns, tmp_path) as net:
            net.ensure_bridge(BridgeSpec(a.bridge, a.uuid))
            network_services.realise(net, a)
            supervisor = net.dnsmasq
            assert supervisor is not None
            for _ in range(20):
                pid = supervisor.pid(a.uuid)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                restarted = wait_for(supervisor.watch, timeout=2, what="restart")
                assert restarted == [a.uuid]
                assert guests.dnsmasq_pids(ns) == [supervisor.pid(a.uuid)]
    finally:
        guests.kill_dnsmasqs(ns)


def test_one_dnsmasq_that_cannot_start_does_not_keep_the_others_down(
    ns: str, tmp_path: Path
) -> None:
    guests.traversable(tmp_path)
    a = spec("a", "00000000-0000-0000-0000-00000000000a", "vnbra", 41)
    b = spec("b", "00000000-0000-0000-0000-00000000000b", "vnbrb", 42)
    try:
        with HostNet(ns, tmp_path) as net:
            for n in (a, b):
                net.ensure_bridge(BridgeSpec(n.bridge, n.uuid))
                network_services.realise(net, n)
            supervisor = net.dnsmasq
            assert supervisor is not None
            with pytest.raises(KernelError, match="refused to start"):
                supervisor.ensure(DnsmasqSpec(a.uuid, ["no-such-option"]))
            b_pid = supervisor.pid(b.uuid)
            assert b_pid is not None
            os.kill(b_pid, signal.SIGKILL)
            restarted = wait_for(supervisor.watch, timeout=2, what="b restarted")
            assert restarted == [b.uuid]
            assert supervisor.pid(a.uuid) is None
            assert guests.dnsmasq_pids(ns) == [supervisor.pid(b.uuid)]
    finally:
        guests.kill_dnsmasqs(ns)
