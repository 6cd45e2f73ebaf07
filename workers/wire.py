"""Between the messages (app.messages) and the kernel layer: desired state to kernel specs,
kernel outcomes to reports, and each host failure to its code, in one place."""

from __future__ import annotations

import errno

from app.messages import HostErrorCode, HostPort, NetworkSpec, PortResult
from app.messages.reports import PortState
from workers.kernel import BridgeSpec, KernelError, PortSpec
from workers.kernel.errors import (
    BridgeFull,
    BridgeMissing,
    DeviceConflict,
    NamespaceMissing,
    TapBusy,
)
from workers.kernel.specs import Bandwidth, Floor

_CODES: list[tuple[type[KernelError], HostErrorCode]] = [
    (DeviceConflict, HostErrorCode.DEVICE_CONFLICT),
    (BridgeMissing, HostErrorCode.BRIDGE_MISSING),
    (BridgeFull, HostErrorCode.BRIDGE_FULL),
    (NamespaceMissing, HostErrorCode.NAMESPACE_MISSING),
    (TapBusy, HostErrorCode.TAP_BUSY),
]


def error_code(exc: BaseException) -> HostErrorCode:
    """What kind of failure ``exc`` is, for the control plane and the API to tell apart."""
    if not isinstance(exc, KernelError):
        return HostErrorCode.UNEXPECTED
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    if exc.errno in (errno.EPERM, errno.EACCES):
        return HostErrorCode.NOT_PERMITTED
    if exc.errno == errno.EOPNOTSUPP:
        return HostErrorCode.UNSUPPORTED
    if exc.errno == errno.EXFULL:
        return HostErrorCode.BRIDGE_FULL
    return HostErrorCode.KERNEL


def error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, KernelError) else f"unexpected error: {exc}"


def bridge_spec(network: NetworkSpec) -> BridgeSpec:
    return BridgeSpec(
        name=network.bridge,
        owner=network.uuid,
        mac=network.mac,
        mtu=network.mtu,
        stp=network.stp,
        delay=network.delay,
        vlan_filtering=network.mac_table_manager == "libvirt",
    )


def floor(port: HostPort) -> Floor | None:
    rate = port.floor
    if rate is None or port.class_id is None:
        return None
    inbound = (port.bandwidth or {}).get("inbound") or {}
    return Floor(port.class_id, port.guest_mac, rate, inbound.get("average"))


def port_spec(port: HostPort) -> PortSpec:
    return PortSpec(
        tap=port.tap,
        bridge=port.bridge,
        guest_mac=port.guest_mac,
        owner=port.port_id,
        mtu=port.mtu,
        mac_table_manager=port.mac_table_manager,
        owner_uid=port.owner_uid,
        owner_gid=port.owner_gid,
        vnet_hdr=port.vnet_hdr,
        multi_queue=port.multi_queue,
        fdb=port.fdb,
        netns=port.netns,
        guest_ifname=port.guest_ifname,
        keep_busy=port.keep_busy,
        reuse_held=port.reuse_held,
        isolated=port.isolated,
        bandwidth=Bandwidth.from_dict(port.bandwidth),
        floor=floor(port),
        class_id=port.class_id,
        qos=port.qos,
    )


def port_result(port: HostPort, outcome: object, done: PortState, seconds: float) -> PortResult:
    """The report of one port: ``outcome`` is the exception its batch gave it, if any."""
    failed = isinstance(outcome, BaseException)
    return PortResult(
        port_id=port.port_id,
        generation=port.generation,
        tap=port.tap,
        bridge=port.bridge,
        guest_mac=port.guest_mac,
        state="failed" if failed else done,
        error=str(outcome) if failed else None,
        error_code=error_code(outcome) if isinstance(outcome, BaseException) else None,
        seconds=seconds,
    )
