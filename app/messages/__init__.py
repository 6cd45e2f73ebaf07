"""Every message that crosses the broker between the API, the control worker and the host
workers, typed, with its defaults written once. Pure: imports nothing else from app, so the
host workers may import it (and nothing else of app but their wiring)."""

from app.messages.base import Message, MessageError
from app.messages.errors import HostErrorCode
from app.messages.host import (
    ApplyPorts,
    Bundle,
    HostPort,
    NetworkSpec,
    RealiseNetwork,
    ReconcileHost,
    RemoveNetwork,
    read_step,
)
from app.messages.overlay import (
    OverlayDelta,
    OverlayHead,
    OverlayState,
    SyncOverlay,
    SyncOverlayDelta,
)
from app.messages.reports import (
    AppliedReport,
    Heartbeat,
    LeasesReport,
    OverlayReport,
    PortResult,
    PortsReport,
    RealisationReport,
)

__all__ = [
    "AppliedReport",
    "ApplyPorts",
    "Bundle",
    "Heartbeat",
    "HostErrorCode",
    "HostPort",
    "LeasesReport",
    "Message",
    "MessageError",
    "NetworkSpec",
    "OverlayDelta",
    "OverlayHead",
    "OverlayReport",
    "OverlayState",
    "PortResult",
    "PortsReport",
    "RealisationReport",
    "RealiseNetwork",
    "ReconcileHost",
    "RemoveNetwork",
    "SyncOverlay",
    "SyncOverlayDelta",
    "read_step",
]
