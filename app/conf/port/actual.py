"""A stored port as plain values, and the device it really uses (libvirt's <actual>/<plug>)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class StoredPort:
    """What the definitions layer shows of a stored port (the API builds one from its row)."""

    id: str
    #: None for a domain interface of type 'bridge' (a host bridge, no virtnet network)
    network_id: int | None
    owner_name: str
    owner_uuid: str
    mac: str
    portgroup: str | None
    tap: str
    bridge: str
    mac_table_manager: str
    #: the rest of the allocation: vlan, bandwidth, mtu, tap options
    spec: dict[str, Any]

    @classmethod
    def of(cls, row: Any) -> StoredPort:
        """The values of anything with these attributes (a database row)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def actual(port: StoredPort) -> dict[str, Any]:
    """The device the connection really uses: libvirt's <actual> / <plug>."""
    return {
        "type": port.spec.get("plug_type")
        or ("network" if port.network_id is not None else "bridge"),
        "bridge": port.bridge,
        "mac_table_manager": port.mac_table_manager,
        "tap": port.tap,
        "mtu": port.spec.get("mtu"),
        "vlan": None,
        "bandwidth": port.spec.get("bandwidth"),
        "port_isolated": bool(port.spec.get("isolated")),
        "class_id": port.spec.get("class_id") if _floor(port) else None,
        #: how the host limits the outbound side: 'police' (act_police) or 'ifb' (shaped)
        "outbound_limit": port.spec.get("outbound_mode"),
    }


def _floor(port: StoredPort) -> bool:
    return bool(((port.spec.get("bandwidth") or {}).get("inbound") or {}).get("floor"))
