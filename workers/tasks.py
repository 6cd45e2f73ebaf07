"""Host tasks: each carries the whole desired state of one object and is safe to run twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from celery import Celery

from app.celery_app import (
    APPLY_BUNDLE,
    APPLY_PORTS,
    CONTROL_QUEUE,
    HEARTBEAT,
    HEARTBEAT_QUEUE,
    REALISE_NETWORK,
    RECONCILE_HOST,
    REMOVE_NETWORK,
    REPORT_APPLIED,
    REPORT_LEASES,
    REPORT_OVERLAY,
    REPORT_PORTS,
    REPORT_REALISATION,
    SYNC_OVERLAY,
)
from app.host_identity import sign
from workers import network_services, overlay
from workers.kernel import BridgeSpec, KernelError, PortRef, PortSpec
from workers.kernel.interface import HostNetwork
from workers.kernel.specs import Bandwidth, Floor
from workers.revisions import Revisions

log = logging.getLogger("virtnet.worker")


#: sends one task: name, keyword arguments, queue (app.celery_app.task_sender makes one)
Sender = Callable[[str, dict[str, Any], str], None]


class HostAgent:
    """The host worker's state: which host it is, its kernel handle, how it reports back.

    ``network`` opens the host's network when first needed (again after ``close``):
    HostNet on a host, FakeHostNet in the unit tests. ``send`` carries reports away.
    """

    def __init__(
        self,
        *,
        network: Callable[[], HostNetwork],
        send: Sender,
        host: str,
        worker_id: str,
        key: str,
        state_dir: Path | None = None,
        underlay: str | None = None,
    ) -> None:
        self.host, self.worker_id = host, worker_id
        self._open_network, self._send = network, send
        self.key = key  # signs every report: the control worker believes only signed claims
        self.state_dir = state_dir
        #: networks with a dnsmasq here: uuid -> [network id, lease file stamp last reported]
        self._lease_watch: dict[str, list[Any]] = {}
        self.underlay = underlay
        self.underlay_mtu: int | None = None
        self._net: HostNetwork | None = None
        self._lock = threading.Lock()
        self.capabilities: dict[str, Any] = {}
        #: the desired revision this worker brought the host to (app.services.intent)
        self.revisions = Revisions()
        self._steps: dict[str, Callable[[dict[str, Any]], None]] = {
            APPLY_PORTS: lambda kw: self.apply_ports(kw["ports"]),
            REALISE_NETWORK: lambda kw: self.realise(kw["network"]),
            REMOVE_NETWORK: lambda kw: self.remove(kw["network"]),
            RECONCILE_HOST: lambda kw: self.reconcile(kw["networks"], kw.get("ports") or []),
            SYNC_OVERLAY: lambda kw: self.sync_overlay(kw["overlay"]),
        }

    @property
    def net(self) -> HostNetwork:
        if self._net is None:
            self._net = self._open_network()
        return self._net

    def probe(self) -> None:
        caps = self.net.probe()
        self.capabilities = {
            "kernel_release": caps.kernel_release,
            "vlan_filtering": caps.vlan_filtering,
            "vlan_8021q": caps.vlan_8021q,
            "tun": caps.tun,
            "net_admin": caps.net_admin,
        }
        if self.underlay:
            self.underlay_mtu = self.net.underlay_mtu(self.underlay)
            self.capabilities.update(underlay=self.underlay, underlay_mtu=self.underlay_mtu)

    def close(self) -> None:
        if self._net is not None:
            self._net.close()
            self._net = None

    def send(self, name: str, **kwargs: Any) -> None:
        self._send(name, sign(self.key, name, kwargs), CONTROL_QUEUE)

    def send_heartbeat(self, *, registering: bool) -> None:
        beat = {
            "host": self.host,
            "worker_id": self.worker_id,
            "capabilities": self.capabilities,
            "registering": registering,
        }
        self._send(HEARTBEAT, sign(self.key, HEARTBEAT, beat), HEARTBEAT_QUEUE)

    @property
    def applied(self) -> int:
        return self.revisions.applied

    def apply(self, *, base: int, revision: int, full: bool, steps: list[list[Any]]) -> None:
        """Run one bundle (what one transaction decided for this host), then say which
        revision the host is at. Its reports go first, on the same connection: when the
        control worker reads the revision, it has read them."""
        self.revisions.take(self._run, base=base, revision=revision, full=full, steps=steps)
        self.send(REPORT_APPLIED, host=self.host, revision=self.revisions.applied)

    def _run(self, revision: int, steps: list[list[Any]]) -> bool:
        ok = True
        for name, kwargs in steps:
            try:
                self._steps[name](kwargs)
            except Exception:  # the others still run; the resync retries the whole
                log.exception("step %s of revision %d failed", name, revision)
                ok = False
        return ok

    def realise(self, network: dict[str, Any]) -> None:
        state, error = "active", None
        try:
            with self._lock:
                if network["mode"] == "bridge":
                    self.net.check_bridge(network["bridge"])
                else:
                    if network.get("overlay"):
                        network = overlay.with_mtu(network, self.underlay, self.underlay_mtu)
                    result = self.net.ensure_bridge(_bridge_spec(network))
                    network_services.realise(self.net, network)
                    self._watch_leases(network)
                    self.net.ensure_bridge_bandwidth(
                        network["bridge"],
                        network["uuid"],
                        Bandwidth.from_dict(network.get("bandwidth")),
                    )
                    if result.degraded:
                        state, error = "degraded", result.degraded
        except KernelError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # report every failure; a silent host is worse
            log.exception("realising network %s failed", network["name"])
            state, error = "failed", f"unexpected error: {exc}"
        self.send(
            REPORT_REALISATION,
            host=self.host,
            network_id=network["network_id"],
            generation=network["generation"],
            state=state,
            error=error,
        )
        if network.get("overlay") and state != "failed":
            self.sync_overlay(network["overlay"], full=True)

    def sync_overlay(self, state: dict[str, Any], *, full: bool = False) -> None:
        """Make the network's VXLAN device, table and firewall match; report what it did."""
        with self._lock:
            report = overlay.apply(self.net, state, self.underlay, full=full)
        self.send(REPORT_OVERLAY, host=self.host, **report)

    def remove(self, network: dict[str, Any]) -> None:
        if network["mode"] == "bridge":
            return  # an existing host bridge: never created by us, never deleted by us
        self._lease_watch.pop(network["uuid"], None)
        with self._lock:
            if network.get("vni"):
                self.net.remove_overlay(network["vni"], owner=network["uuid"])
            network_services.remove(self.net, network)
            self.net.remove_bridge(network["bridge"], owner=network["uuid"])
            self.net.remove_ifb(network["uuid"])

    def watch(self) -> None:
        """Restart any dnsmasq of an active network that died (called every half second)."""
        if self.state_dir is None:
            return
        supervisor = self.net.dnsmasq
        if supervisor is None:
            return
        for key in supervisor.watch():
            log.warning("dnsmasq of network %s had died: restarted", key)
        for key, watched in list(self._lease_watch.items()):
            stamp = supervisor.leases_stamp(key)
            if stamp != watched[1]:
                watched[1] = stamp
                leases = [network_services.lease_view(x) for x in supervisor.leases(key)]
                self.send(REPORT_LEASES, host=self.host, network_id=watched[0], leases=leases)

    def _watch_leases(self, network: dict[str, Any]) -> None:
        if network.get("dnsmasq"):
            self._lease_watch.setdefault(network["uuid"], [network["network_id"], -1.0])
        else:
            self._lease_watch.pop(network["uuid"], None)

    def apply_ports(self, ports: list[dict[str, Any]], *, check_qos: bool = False) -> None:
        """Plug the ports wanted present, unplug the others; report every one."""
        plug = [p for p in ports if p["present"]]
        unplug = [p for p in ports if not p["present"]]
        results: list[dict[str, Any]] = []
        with self._lock:
            if unplug:
                unplug, results = self._leave_held(unplug)
            if unplug:
                results += _timed(self.net.unplug_many, unplug, "absent")
            if plug:
                plug_many = partial(self.net.plug_many, check_qos=check_qos)
                results += _timed(plug_many, plug, "plugged")
            for result in results:
                if result["state"] == "plugged":
                    result["outbound"] = self.net.outbound_modes.get(result["tap"])
        self.send(REPORT_PORTS, host=self.host, results=results)

    def _leave_held(
        self, unplug: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Ports asked to stay if a hypervisor holds a tap open: every port of that owner
        (domain) stays, reported "busy" with the taps in use; the rest are to unplug."""
        careful = [p for p in unplug if p.get("keep_busy") and not p.get("netns")]
        held = self.net.held_taps([p["tap"] for p in careful])
        if not held:
            return unplug, []
        in_use: dict[str, list[str]] = {}
        for p in careful:
            if p["tap"] in held:
                in_use.setdefault(_owner(p), []).append(p["tap"])
        stay = [p for p in unplug if p.get("keep_busy") and _owner(p) in in_use]
        busy = [
            {
                **_result(p, None, "busy", 0.0),
                "error": f"tap {', '.join(sorted(in_use[_owner(p)]))} is in use: a process "
                "(the guest's hypervisor) holds it open",
            }
            for p in stay
        ]
        return [p for p in unplug if p not in stay], busy

    def reconcile(self, networks: list[dict[str, Any]], ports: list[dict[str, Any]]) -> None:
        """Make the host match the full desired state: add what is missing, drop what is ours
        and no longer wanted; devices virtnet did not create are never touched."""
        # a device is wanted by name AND owner: a tap left by a deleted port whose name a new
        # port reuses goes first (the new one is plugged below, once the name is free)
        wanted_taps = {(p["tap"], p["port_id"]) for p in ports if p["present"]}
        wanted_bridges = {n["bridge"] for n in networks if n["mode"] != "bridge"}
        with self._lock:
            owned = self.net.owned_devices()
            leftovers = [
                PortRef(d.name, d.owner, kind=d.kind)
                for d in owned
                if d.kind in ("tap", "veth") and (d.name, d.owner) not in wanted_taps
            ]
            # a tap a hypervisor still holds stays until it lets go (a later pass removes it)
            held = self.net.held_taps([r.tap for r in leftovers if r.kind == "tap"])
            self.net.unplug_many([r for r in leftovers if r.tap not in held])
            overlay.remove_leftovers(self.net, owned, networks)
            wanted_netns = {p["netns"] for p in ports if p["present"] and p.get("netns")}
            for name in self.net.created_namespaces():
                if name not in wanted_netns:
                    self.net.remove_namespace_if_unused(name)
            for device in owned:
                if device.kind == "bridge" and device.name not in wanted_bridges:
                    self.net.remove_bridge(device.name, owner=device.owner)
            network_services.reconcile(self.net, networks)
            wanted_owners = {p["port_id"] for p in ports if p["present"]}
            wanted_owners |= {n["uuid"] for n in networks}
            try:
                for device in owned:
                    if device.kind == "ifb" and device.owner not in wanted_owners:
                        self.net.remove_ifb(device.owner)
                for bridge in wanted_bridges & {d.name for d in owned}:
                    keep = {
                        p["class_id"]
                        for p in ports
                        if p["present"] and p["bridge"] == bridge and _floor(p) is not None
                    }
                    self.net.remove_floors(bridge, keep=keep)  # floors of ports gone
            except KernelError:  # the ports and networks below still get their turn
                log.exception("removing leftover bandwidth settings failed")
        for network in networks:
            self.realise(network)
        if ports:
            self.apply_ports(ports, check_qos=True)


def _bridge_spec(network: dict[str, Any]) -> BridgeSpec:
    return BridgeSpec(
        name=network["bridge"],
        owner=network["uuid"],
        mac=network.get("mac"),
        mtu=network.get("mtu"),
        stp=network.get("stp", True),
        delay=network.get("delay", 0),
        vlan_filtering=network.get("mac_table_manager") == "libvirt",
    )


def _port_spec(port: dict[str, Any]) -> PortSpec:
    return PortSpec(
        tap=port["tap"],
        bridge=port["bridge"],
        guest_mac=port["guest_mac"],
        owner=port["port_id"],
        mtu=port.get("mtu"),
        mac_table_manager=port.get("mac_table_manager", "kernel"),
        owner_uid=port.get("owner_uid"),
        owner_gid=port.get("owner_gid"),
        vnet_hdr=port.get("vnet_hdr", True),
        multi_queue=port.get("multi_queue", False),
        fdb=port.get("fdb", True),
        netns=port.get("netns"),
        guest_ifname=port.get("guest_ifname"),
        keep_busy=port.get("keep_busy", False),
        reuse_held=port.get("reuse_held", False),
        isolated=bool(port.get("isolated")),
        bandwidth=Bandwidth.from_dict(port.get("bandwidth")),
        floor=_floor(port),
        class_id=port.get("class_id"),
        qos=bool(port.get("qos")),
    )


def _owner(port: dict[str, Any]) -> str:
    return str(port.get("owner_uuid") or port["port_id"])


def _floor(port: dict[str, Any]) -> Floor | None:
    inbound = (port.get("bandwidth") or {}).get("inbound") or {}
    if not inbound.get("floor") or port.get("class_id") is None:
        return None
    return Floor(port["class_id"], port["guest_mac"], inbound["floor"], inbound.get("average"))


def _timed(
    apply: Callable[[list[PortSpec]], list[Any]], ports: list[dict[str, Any]], done: str
) -> list[dict[str, Any]]:
    """Apply a batch and report each port with its share of the batch's time on this host."""
    started = time.perf_counter()
    outcomes = apply([_port_spec(p) for p in ports])
    each = (time.perf_counter() - started) / len(ports)
    return [_result(p, o, done, each) for p, o in zip(ports, outcomes, strict=True)]


def _result(port: dict[str, Any], outcome: object, done: str, seconds: float) -> dict[str, Any]:
    error = str(outcome) if isinstance(outcome, Exception) else None
    return {
        "port_id": port["port_id"],
        "generation": port["generation"],
        "tap": port["tap"],
        "bridge": port["bridge"],
        "guest_mac": port["guest_mac"],
        "state": "failed" if error else done,
        "error": error,
        "seconds": seconds,
    }


def register_host_tasks(celery: Celery, agent: HostAgent) -> None:
    @celery.task(name=APPLY_BUNDLE, ignore_result=True)
    def apply(base: int, revision: int, full: bool, steps: list[list[Any]]) -> None:
        agent.apply(base=base, revision=revision, full=full, steps=steps)

    # one step each, as sent before bundles: a queue from an older control plane still drains
    @celery.task(name=REALISE_NETWORK, ignore_result=True)
    def realise_network(network: dict[str, Any]) -> None:
        agent.realise(network)

    @celery.task(name=REMOVE_NETWORK, ignore_result=True)
    def remove_network(network: dict[str, Any]) -> None:
        agent.remove(network)

    @celery.task(name=RECONCILE_HOST, ignore_result=True)
    def reconcile(
        networks: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None
    ) -> None:
        agent.reconcile(networks, ports or [])

    @celery.task(name=SYNC_OVERLAY, ignore_result=True)
    def sync_overlay(overlay: dict[str, Any]) -> None:
        agent.sync_overlay(overlay)

    @celery.task(name=APPLY_PORTS, ignore_result=True)
    def apply_ports(ports: list[dict[str, Any]]) -> None:
        agent.apply_ports(ports)
