"""Queue and task names: the API, the control worker and the host workers share only these
strings, never code objects."""

from __future__ import annotations

CONTROL_QUEUE = "control"
#: heartbeats have their own queue so a backlog of reports cannot make a live host look down
HEARTBEAT_QUEUE = "control.heartbeat"

# to the control worker (reports)
HEARTBEAT = "virtnet.control.heartbeat"
REPORT_REALISATION = "virtnet.control.report_realisation"
REPORT_PORTS = "virtnet.control.report_ports"
REPORT_LEASES = "virtnet.control.report_leases"
REPORT_OVERLAY = "virtnet.control.report_overlay"
#: the revision a host has reached (app.services.intent)
REPORT_APPLIED = "virtnet.control.report_applied"

# to a host (steps of a bundle; each is also a task of its own, as sent before bundles)
REALISE_NETWORK = "virtnet.host.realise_network"
REMOVE_NETWORK = "virtnet.host.remove_network"
RECONCILE_HOST = "virtnet.host.reconcile"
APPLY_PORTS = "virtnet.host.apply_ports"
#: an overlay network's forwarding table on one host
SYNC_OVERLAY = "virtnet.host.sync_overlay"
#: what changed in it since the state the host was last sent (a bundle step only)
SYNC_OVERLAY_DELTA = "virtnet.host.sync_overlay_delta"
#: what one transaction decided for one host, stamped with the host's desired revision
APPLY_BUNDLE = "virtnet.host.apply"


def host_queue(host: str) -> str:
    return f"host.{host}"


def queue_host(queue: str) -> str | None:
    """The host a queue belongs to, None for the control queues."""
    return queue.removeprefix("host.") if queue.startswith("host.") else None
