"""libvirt <network> XML <-> NetworkDefinition: the two views of one document."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.conf.errors import error_location
from app.conf.network.format import format_network
from app.conf.network.model import NetworkDefinition
from app.conf.network.parse import read_network
from app.conf.network.validate import definition_problems
from app.conf.xml.body import error, parse_body, refuse
from app.conf.xml.reader import Findings


def network_from_xml(raw: bytes) -> NetworkDefinition:
    """Parse a libvirt <network> document safely; InvalidDocument when it cannot be."""
    return read_network_xml(raw)[0]


def read_network_xml(raw: bytes) -> tuple[NetworkDefinition, Findings]:
    """network_from_xml, and where in the document each field came from (later errors about
    the definition name those places: the path in the format the client sent)."""
    document, found = read_network(parse_body(raw))
    if found.errors:
        raise refuse(found.errors)
    try:
        definition = NetworkDefinition.model_validate(document)
    except ValidationError as exc:
        errors = [error(found, *error_location(e)) for e in exc.errors()]
        raise refuse(errors) from None
    problems = definition_problems(definition)
    if problems:
        raise refuse([error(found, p.loc, p.msg) for p in problems])
    return definition, found


def network_to_xml(document: dict[str, Any]) -> str:
    """The definition as `virsh net-dumpxml` would print it (``status`` is not part of it)."""
    fields = {key: value for key, value in document.items() if key != "status"}
    return format_network(NetworkDefinition.model_validate(fields))
