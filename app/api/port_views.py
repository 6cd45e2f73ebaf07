"""How ports, domains and operations look from the API."""

from __future__ import annotations

from typing import Any

from app.conf.port.actual import StoredPort, actual
from app.models import Domain, Operation, Port
from app.services.port_lifecycle import ERROR_CODE


def port_view(port: Port, network: str | None) -> dict[str, Any]:
    return {
        "id": port.id,
        "network": network if port.network_id is not None else None,
        "owner": {"name": port.owner_name, "uuid": port.owner_uuid},
        "mac": port.mac,
        "host": port.host,
        "portgroup": port.portgroup,
        **{
            k: port.spec.get(k)
            for k in ("mtu", "owner_uid", "owner_gid", "vnet_hdr", "multi_queue")
        },
        "state": port.state,
        "error": port.error,
        #: what kind of host failure ``error`` is (app.messages.HostErrorCode), if a host's
        "error_code": port.spec.get(ERROR_CODE) if port.error else None,
        "revision": port.generation,
        "operation_id": port.operation_id,
        "actual": actual(StoredPort.of(port)),
        "created_at": port.created_at,
        "updated_at": port.updated_at,
    }


def operation_view(op: Operation) -> dict[str, Any]:
    return {
        "id": op.id,
        "kind": op.kind,
        "target": op.target,
        "state": op.state,
        "error": op.error,
        "created_at": op.created_at,
        "updated_at": op.updated_at,
        "finished_at": op.finished_at,
        "result": op.result,
    }


def guest_device(port: Port) -> dict[str, Any]:
    """What the guest's side needs to use the port: a hypervisor opens the tap (with these
    flags and queues); a container finds its veth end in ``netns`` as ``guest_ifname``."""
    spec = port.spec
    if spec.get("netns"):
        return {"device": "veth", "netns": spec["netns"], "guest_ifname": spec.get("guest_ifname")}
    return {
        "device": "tap",
        "vnet_hdr": spec.get("vnet_hdr", True),
        "multi_queue": spec.get("multi_queue", False),
        "queues": spec.get("queues") or 1,
    }


def domain_view(domain: Domain, ports: list[Port]) -> dict[str, Any]:
    by_mac = {p.mac: p for p in ports}
    interfaces = []
    for interface in domain.definition.get("interfaces", []):
        port = by_mac.get(interface.get("mac"))
        live = None
        if port is not None:
            live = {
                "port_id": port.id,
                "state": port.state,
                "error": port.error,
                **actual(StoredPort.of(port)),
                **guest_device(port),
            }
        interfaces.append({**interface, "actual": live})
    return {
        **domain.definition,
        "interfaces": interfaces,
        "status": {
            "state": domain.state,
            "error": domain.error,
            "revision": domain.revision,
            "created_at": domain.created_at,
            "updated_at": domain.updated_at,
        },
    }
