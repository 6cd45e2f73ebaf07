"""Host tasks: each carries the whole desired state of one object and is safe to run twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from app.messages import (
    AppliedReport,
    ApplyPorts,
    Heartbeat,
    HostErrorCode,
    HostPort,
    LeasesReport,
    Message,
    NetworkSpec,
    OverlayState,
    PortResult,
    PortsReport,
    RealisationReport,
    RealiseNetwork,
    ReconcileHost,
    RemoveNetwork,
    SyncOverlay,
    SyncOverlayDelta,
    read_step,
)
from app.messages.names import (
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
from app.messages.reports import PortState
from app.messages.signing import sign
from workers import batching, network_services, overlay
from workers.kernel import KernelError, PortRef, PortSpec
from workers.kernel.interface import HostNetwork
from workers.kernel.specs import Bandwidth
from workers.revisions import BundleLike, Pending, Revisions
from workers.wire import bridge_spec, error_code, error_text, port_result, port_spec

log = logging.getLogger("virtnet.worker")


#: sends one task: name, keyword arguments, queue (app.celery_app.task_sender makes one)
Sender = Callable[[str, dict[str, Any], str], None]
PortsIn = Sequence[HostPort | Mapping[str, Any]]
NetworkIn = NetworkSpec | Mapping[str, Any]


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
        #: each overlay network's state as last applied here: what a delta builds on
        self.overlays = overlay.Tables()
        #: port results of the batch running (apply_many), sent as one report at its end
        self._collected: list[PortResult] | None = None

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

    def send(self, name: str, report: Message) -> None:
        self._send(name, sign(self.key, name, report.wire()), CONTROL_QUEUE)

    def send_heartbeat(self, *, registering: bool) -> None:
        beat = Heartbeat(
            host=self.host,
            worker_id=self.worker_id,
            capabilities=self.capabilities,
            registering=registering,
        )
        self._send(HEARTBEAT, sign(self.key, HEARTBEAT, beat.wire()), HEARTBEAT_QUEUE)

    @property
    def applied(self) -> int:
        return self.revisions.applied

    def apply(
        self, *, base: int, revision: int, full: bool, steps: Sequence[Sequence[Any]]
    ) -> None:
        """Run one bundle (what one transaction decided for this host), then say which
        revision the host is at."""
        self.apply_many([Pending(base, revision, full, steps)])

    def apply_many(self, bundles: Sequence[BundleLike]) -> None:
        """Run bundles in queue order as one batch (workers.batching), then say which
        revision the host is at: in its ports report if it has one, else on its own after
        the other reports, on the same connection, so that the control worker has read them
        when it reads the revision."""
        self._collected = []
        try:
            self.revisions.take_many(self._run_plan, bundles)
        except BaseException:
            self._send_results(None)  # what the kernel did before the failure
            raise
        applied = self.revisions.applied
        if not self._send_results(applied):  # one message: the control worker's one pass
            self.send(REPORT_APPLIED, AppliedReport(host=self.host, revision=applied))

    def _send_results(self, applied: int | None) -> bool:
        results, self._collected = self._collected, None
        if results:  # one report for the whole batch
            self.send(REPORT_PORTS, PortsReport(host=self.host, results=results, applied=applied))
        return bool(results)

    def _run_plan(self, plan: batching.Plan) -> bool:
        ok = True
        for item in batching.merge(plan):
            if isinstance(item, batching.Unreadable):
                log.error("step %s of revision %d: %s", item.name, item.revision, item.error)
                ok = False
                continue
            revision, step = item
            try:
                self.do(step)
            except Exception:  # the others still run; the resync retries the whole
                log.exception("step %s of revision %d failed", type(step).__name__, revision)
                ok = False
        return ok

    def step(self, name: str, payload: Any) -> None:
        """Run one step; a malformed one fails here, with MessageError naming the field."""
        self.do(read_step(name, payload))

    def do(self, step: Message) -> None:
        match step:
            case ApplyPorts(ports=ports):
                self.apply_ports(ports)
            case RealiseNetwork(network=network):
                self.realise(network)
            case RemoveNetwork(network=network):
                self.remove(network)
            case ReconcileHost(networks=networks, ports=ports):
                self.reconcile(networks, ports)
            case SyncOverlay(overlay=state):
                self.sync_overlay(state)
            case SyncOverlayDelta(delta=delta):
                with self._lock:
                    report = self.overlays.delta(self.net, delta, self.underlay, host=self.host)
                self.send(REPORT_OVERLAY, report)

    def realise(self, network_in: NetworkIn) -> None:
        network = NetworkSpec.read(network_in, REALISE_NETWORK)
        state, error, code = "active", None, None
        try:
            with self._lock:
                if not network.owns_bridge:
                    self.net.check_bridge(network.bridge)
                else:
                    if network.overlay is not None:
                        network = overlay.with_mtu(network, self.underlay, self.underlay_mtu)
                    result = self.net.ensure_bridge(bridge_spec(network))
                    network_services.realise(self.net, network)
                    self._watch_leases(network)
                    self.net.ensure_bridge_bandwidth(
                        network.bridge, network.uuid, Bandwidth.from_dict(network.bandwidth)
                    )
                    if result.degraded:
                        state, error = "degraded", result.degraded
        except Exception as exc:  # report every failure; a silent host is worse
            if not isinstance(exc, KernelError):
                log.exception("realising network %s failed", network.name)
            state, error, code = "failed", error_text(exc), error_code(exc)
        report = RealisationReport(
            host=self.host,
            network_id=network.network_id,
            generation=network.generation,
            state=state,
            error=error,
            error_code=code,
        )
        self.send(REPORT_REALISATION, report)
        if network.overlay is not None and state != "failed":
            self.sync_overlay(network.overlay, full=True)

    def sync_overlay(self, state: OverlayState | Mapping[str, Any], *, full: bool = False) -> None:
        """Make the network's VXLAN device, table and firewall match; report what it did."""
        with self._lock:
            desired = OverlayState.read(state, SYNC_OVERLAY)
            report = self.overlays.full(self.net, desired, self.underlay, host=self.host, full=full)
        self.send(REPORT_OVERLAY, report)

    def remove(self, network_in: NetworkIn) -> None:
        network = NetworkSpec.read(network_in, REMOVE_NETWORK)
        if not network.owns_bridge:
            return  # an existing host bridge: never created by us, never deleted by us
        self._lease_watch.pop(network.uuid, None)
        with self._lock:
            if network.vni:
                self.overlays.forget(network.network_id)
                self.net.remove_overlay(network.vni, owner=network.uuid)
            network_services.remove(self.net, network)
            self.net.remove_bridge(network.bridge, owner=network.uuid)
            self.net.remove_ifb(network.uuid)

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
                report = LeasesReport(host=self.host, network_id=watched[0], leases=leases)
                self.send(REPORT_LEASES, report)

    def _watch_leases(self, network: NetworkSpec) -> None:
        if network.dnsmasq:
            self._lease_watch.setdefault(network.uuid, [network.network_id, -1.0])
        else:
            self._lease_watch.pop(network.uuid, None)

    def apply_ports(self, ports_in: PortsIn, *, check_qos: bool = False) -> None:
        """Plug the ports wanted present, unplug the others; report every one."""
        ports = [HostPort.read(p, APPLY_PORTS) for p in ports_in]
        plug = [p for p in ports if p.present]
        unplug = [p for p in ports if not p.present]
        results: list[PortResult] = []
        with self._lock:
            if unplug:
                unplug, results = self._leave_held(unplug)
            if unplug:
                results += _timed(self.net.unplug_many, unplug, "absent")
            if plug:
                plug_many = partial(self.net.plug_many, check_qos=check_qos)
                results += _timed(plug_many, plug, "plugged")
            modes = self.net.outbound_modes
            results = [  # (a copy only for the few with a limit: a reconcile reports all)
                r.model_copy(update={"outbound": modes[r.tap]})
                if r.state == "plugged" and modes.get(r.tap) is not None
                else r
                for r in results
            ]
        if self._collected is not None:
            self._collected += results
        else:
            self.send(REPORT_PORTS, PortsReport(host=self.host, results=results))

    def _leave_held(self, unplug: list[HostPort]) -> tuple[list[HostPort], list[PortResult]]:
        """Ports asked to stay if a hypervisor holds a tap open: every port of that owner
        (domain) stays, reported "busy" with the taps in use; the rest are to unplug."""
        careful = [p for p in unplug if p.keep_busy and not p.netns]
        held = self.net.held_taps([p.tap for p in careful])
        if not held:
            return unplug, []
        in_use: dict[str, list[str]] = {}
        for p in careful:
            if p.tap in held:
                in_use.setdefault(p.owner, []).append(p.tap)
        stay = [p for p in unplug if p.keep_busy and p.owner in in_use]
        busy = [
            port_result(p, None, "busy", 0.0).model_copy(
                update={
                    "error": f"tap {', '.join(sorted(in_use[p.owner]))} is in use: a process "
                    "(the guest's hypervisor) holds it open",
                    "error_code": HostErrorCode.TAP_BUSY,
                }
            )
            for p in stay
        ]
        return [p for p in unplug if p not in stay], busy

    def reconcile(self, networks_in: Sequence[NetworkIn], ports_in: PortsIn) -> None:
        """Make the host match the full desired state: add what is missing, drop what is ours
        and no longer wanted; devices virtnet did not create are never touched."""
        networks = [NetworkSpec.read(n, RECONCILE_HOST) for n in networks_in]
        ports = [HostPort.read(p, RECONCILE_HOST) for p in ports_in]
        # a device is wanted by name AND owner: a tap left by a deleted port whose name a new
        # port reuses goes first (the new one is plugged below, once the name is free)
        wanted_taps = {(p.tap, p.port_id) for p in ports if p.present}
        wanted_bridges = {n.bridge for n in networks if n.owns_bridge}
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
            wanted_netns = {p.netns for p in ports if p.present and p.netns}
            for name in self.net.created_namespaces():
                if name not in wanted_netns:
                    self.net.remove_namespace_if_unused(name)
            for device in owned:
                if device.kind == "bridge" and device.name not in wanted_bridges:
                    self.net.remove_bridge(device.name, owner=device.owner)
            network_services.reconcile(self.net, networks)
            wanted_owners = {p.port_id for p in ports if p.present}
            wanted_owners |= {n.uuid for n in networks}
            try:
                for device in owned:
                    if device.kind == "ifb" and device.owner not in wanted_owners:
                        self.net.remove_ifb(device.owner)
                floors: dict[str, set[int]] = {}
                for p in ports:
                    if p.present and p.class_id is not None and p.floor:
                        floors.setdefault(p.bridge, set()).add(p.class_id)
                for bridge in wanted_bridges & {d.name for d in owned}:
                    # floors of ports gone
                    self.net.remove_floors(bridge, keep=floors.get(bridge, set()))
            except KernelError:  # the ports and networks below still get their turn
                log.exception("removing leftover bandwidth settings failed")
        for network in networks:
            self.realise(network)
        if ports:
            self.apply_ports(ports, check_qos=True)


def _timed(
    apply: Callable[[list[PortSpec]], list[Any]], ports: list[HostPort], done: PortState
) -> list[PortResult]:
    """Apply a batch and report each port with its share of the batch's time on this host."""
    started = time.perf_counter()
    outcomes = apply([port_spec(p) for p in ports])
    each = (time.perf_counter() - started) / len(ports)
    return [port_result(p, o, done, each) for p, o in zip(ports, outcomes, strict=True)]
