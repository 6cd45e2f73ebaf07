"""libvirt <network> XML <-> NetworkDefinition."""

from __future__ import annotations

from typing import Any

from app.api.errors import InvalidBody
from app.schemas.network import NetworkDefinition


def network_from_xml(raw: bytes) -> NetworkDefinition:
    """Parse a libvirt <network> document safely; InvalidBody (400/422) when it cannot be."""
    raise InvalidBody(415, "XML network definitions are not supported yet")


def network_to_xml(document: dict[str, Any]) -> str:
    """The definition as `virsh net-dumpxml` would print it."""
    raise NotImplementedError
