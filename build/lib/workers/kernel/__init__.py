"""The kernel layer of the host worker: the only code that talks netlink or writes /sys."""

from .errors import BridgeFull, BridgeMissing, DeviceConflict, KernelError, NamespaceMissing
from .hostnet import HostNet
from .specs import (
    BridgeResult,
    BridgeSpec,
    HostCapabilities,
    OwnedDevice,
    PortRef,
    PortSpec,
)

__all__ = [
    "BridgeFull",
    "BridgeMissing",
    "BridgeResult",
    "BridgeSpec",
    "DeviceConflict",
    "HostCapabilities",
    "HostNet",
    "KernelError",
    "NamespaceMissing",
    "OwnedDevice",
    "PortRef",
    "PortSpec",
]
