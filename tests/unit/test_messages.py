"""The messages between the API, the control worker and the hosts (app.messages): JSON in and
out, defaults written once, and a malformed message refused by name and field."""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest

from app.messages import (
    AppliedReport,
    ApplyPorts,
    Bundle,
    Heartbeat,
    HostErrorCode,
    HostPort,
    LeasesReport,
    Message,
    MessageError,
    NetworkSpec,
    OverlayReport,
    OverlayState,
    PortResult,
    PortsReport,
    RealisationReport,
    RealiseNetwork,
    ReconcileHost,
    RemoveNetwork,
    SyncOverlay,
    read_step,
)
from app.messages.names import APPLY_PORTS, REALISE_NETWORK, SYNC_OVERLAY
from workers.kernel.errors import (
    BridgeFull,
    BridgeMissing,
    DeviceConflict,
    KernelError,
    NamespaceMissing,
    TapBusy,
    from_errno,
)
from workers.wire import error_code, port_spec

UUID = "5b1e7f2c-7d0e-4f0a-9c3b-0e1d2c3b4a59"
PORT = {
    "port_id": "00000000-0000-4000-8000-000000000001",
    "generation": 3,
    "tap": "vnet1",
    "bridge": "virbr1",
    "guest_mac": "52:54:00:00:00:01",
}
NETWORK = {
    "network_id": 1,
    "generation": 2,
    "uuid": UUID,
    "name": "lab",
    "bridge": "virbr1",
}
OVERLAY = {
    "network_id": 1,
    "generation": 2,
    "uuid": UUID,
    "bridge": "virbr1",
    "vni": 5001,
    "local": "10.0.0.1",
    "digest": "abc",
    "remote": [["52:54:00:00:00:02", "10.0.0.2"]],
}

EXAMPLES: list[Message] = [
    HostPort.read(PORT),
    NetworkSpec.read({**NETWORK, "overlay": OVERLAY}),
    OverlayState.read(OVERLAY),
    ApplyPorts(ports=[HostPort.read(PORT)]),
    RealiseNetwork(network=NetworkSpec.read(NETWORK)),
    RemoveNetwork(network=NetworkSpec.read(NETWORK)),
    ReconcileHost(networks=[NetworkSpec.read(NETWORK)], ports=[HostPort.read(PORT)]),
    SyncOverlay(overlay=OverlayState.read(OVERLAY)),
    Bundle(base=1, revision=2, full=False, steps=[(APPLY_PORTS, {"ports": [PORT]})]),
    PortsReport(
        host="h1",
        results=[
            PortResult(
                **{k: PORT[k] for k in ("port_id", "generation", "tap", "bridge", "guest_mac")},
                state="failed",
                error="no such bridge",
                error_code=HostErrorCode.BRIDGE_MISSING,
            )
        ],
    ),
    RealisationReport(host="h1", network_id=1, generation=2, state="active"),
    AppliedReport(host="h1", revision=7),
    LeasesReport(host="h1", network_id=1, leases=[{"mac": "52:54:00:00:00:01"}]),
    OverlayReport(host="h1", network_id=1, generation=2, digest="abc", remote_entries=1),
    Heartbeat(host="h1", worker_id="w1", capabilities={"tun": True}),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_goes_through_json_and_back_unchanged(message: Message) -> None:
    text = json.dumps(message.wire())  # what Celery's JSON serializer does
    assert type(message).read(json.loads(text)) == message


def test_a_reconcile_sends_its_ports_without_their_defaults_and_reads_them_back() -> None:
    """10,000 ports are 2 MB instead of 5: a field at its default is left out, a field
    that differs from it is sent, and the host reads back the same desired state."""
    odd = HostPort.read({**PORT, "port_id": "p2", "tap": "vnet9", "vnet_hdr": False, "mtu": 9000})
    message = ReconcileHost(networks=[NetworkSpec.read(NETWORK)], ports=[HostPort.read(PORT), odd])
    wired = json.loads(json.dumps(message.wire()))
    assert wired["networks"] == [NetworkSpec.read(NETWORK).wire()]  # networks in full
    assert "vnet_hdr" not in wired["ports"][0] and "present" not in wired["ports"][0]
    assert wired["ports"][1]["vnet_hdr"] is False and wired["ports"][1]["mtu"] == 9000
    assert ReconcileHost.read(wired) == message
    assert ReconcileHost(networks=[]).wire() == {"networks": [], "ports": []}


def test_the_port_defaults_are_written_once_and_reach_the_kernel_spec() -> None:
    port = HostPort.read(PORT)
    assert (port.present, port.mac_table_manager, port.fdb, port.vnet_hdr) == (
        True,
        "kernel",
        True,
        True,
    )
    assert (port.multi_queue, port.keep_busy, port.isolated, port.qos) == (False,) * 4
    spec = port_spec(port)
    assert (spec.mac_table_manager, spec.fdb, spec.vnet_hdr, spec.owner) == (
        "kernel",
        True,
        True,
        PORT["port_id"],
    )
    # a null, as from a row not yet flushed, means the default too
    assert HostPort.read({**PORT, "fdb": None, "isolated": None}).fdb is True


def test_a_network_spec_has_its_defaults_and_keeps_its_overlay_typed() -> None:
    network = NetworkSpec.read(NETWORK)
    assert (network.mode, network.stp, network.delay, network.mac_table_manager) == (
        "none",
        True,
        0,
        "kernel",
    )
    assert network.owns_bridge and network.ips == [] and network.overlay is None
    typed = NetworkSpec.read({**NETWORK, "overlay": OVERLAY}).overlay
    assert (
        typed is not None
        and typed.port == 4789
        and typed.remote == [("52:54:00:00:00:02", "10.0.0.2")]
    )


def test_a_field_a_newer_sender_adds_is_ignored() -> None:
    assert HostPort.read({**PORT, "something_new": 1}) == HostPort.read(PORT)


@pytest.mark.parametrize(
    ("name", "payload", "says"),
    [
        (APPLY_PORTS, {"ports": [{**PORT, "tap": None}]}, "ports.0.tap"),
        (APPLY_PORTS, {"ports": [{k: v for k, v in PORT.items() if k != "bridge"}]}, "bridge"),
        (APPLY_PORTS, {"ports": [{**PORT, "mac_table_manager": "vepa"}]}, "mac_table_manager"),
        (REALISE_NETWORK, {"network": {**NETWORK, "generation": "two"}}, "network.generation"),
        (SYNC_OVERLAY, {}, "overlay: Field required"),
        (APPLY_PORTS, [1, 2], "not an object"),
        ("virtnet.host.format_disk", {}, "unknown host step"),
    ],
)
def test_a_malformed_step_is_refused_naming_the_task_and_field(
    name: str, payload: Any, says: str
) -> None:
    with pytest.raises(MessageError) as refused:
        read_step(name, payload)
    assert says in str(refused.value)
    assert not isinstance(refused.value, KeyError)


def test_a_malformed_report_is_refused_with_a_clear_error() -> None:
    with pytest.raises(MessageError, match="malformed virtnet.control.report_ports message"):
        PortsReport.read(
            {"host": "h1", "results": [{"state": "gone"}]}, "virtnet.control.report_ports"
        )


def test_a_malformed_bundle_step_fails_alone_and_the_host_reports_its_revision() -> None:
    from tests.unit.test_host_agent import agent

    host, _, reports = agent()
    host.apply(base=0, revision=1, full=False, steps=[[APPLY_PORTS, {"ports": [{"tap": "x"}]}]])
    assert reports[-1] == ("virtnet.control.report_applied", {"host": "h1", "revision": 0})


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (DeviceConflict("x"), HostErrorCode.DEVICE_CONFLICT),
        (BridgeMissing("x"), HostErrorCode.BRIDGE_MISSING),
        (BridgeFull("x"), HostErrorCode.BRIDGE_FULL),
        (from_errno(errno.EXFULL, "enslaving"), HostErrorCode.BRIDGE_FULL),
        (NamespaceMissing("x"), HostErrorCode.NAMESPACE_MISSING),
        (TapBusy("x"), HostErrorCode.TAP_BUSY),
        (from_errno(errno.EPERM, "creating"), HostErrorCode.NOT_PERMITTED),
        (from_errno(errno.EOPNOTSUPP, "creating"), HostErrorCode.UNSUPPORTED),
        (from_errno(errno.EINVAL, "creating"), HostErrorCode.KERNEL),
        (KernelError("x"), HostErrorCode.KERNEL),
        (RuntimeError("bug"), HostErrorCode.UNEXPECTED),
    ],
)
def test_each_host_failure_has_its_code(exc: BaseException, code: HostErrorCode) -> None:
    assert error_code(exc) == code
