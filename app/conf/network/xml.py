"""libvirt <network> XML <-> NetworkDefinition: the two views of one document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from app.conf.errors import InvalidDocument
from app.conf.network.format import format_network
from app.conf.network.model import NetworkDefinition
from app.conf.network.parse import read_network
from app.conf.network.validate import definition_problems
from app.conf.xml import safe
from app.conf.xml.reader import Findings


def _error(found: Findings, loc: Sequence[str | int], message: str) -> dict[str, Any]:
    where = found.locate(loc)
    return {"field": where.path, "line": where.line, "message": message}


def _refuse(errors: list[dict[str, Any]]) -> InvalidDocument:
    shown = [
        f"{e['field']}" + (f" (line {e['line']})" if e.get("line") else "") + f": {e['message']}"
        for e in errors[:3]
    ]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidDocument("invalid", "; ".join(shown) + more, errors)


def network_from_xml(raw: bytes) -> NetworkDefinition:
    """Parse a libvirt <network> document safely; InvalidDocument when it cannot be."""
    try:
        root = safe.parse(raw)
    except safe.Refused as exc:
        error = {"field": "(document)", "line": exc.line, "message": exc.detail}
        raise InvalidDocument(exc.kind, exc.detail, [error]) from None
    document, found = read_network(root)
    if found.errors:
        raise _refuse(found.errors)
    try:
        definition = NetworkDefinition.model_validate(document)
    except ValidationError as exc:
        errors = [
            _error(found, e["loc"], e["msg"].removeprefix("Value error, ")) for e in exc.errors()
        ]
        raise _refuse(errors) from None
    problems = definition_problems(definition)
    if problems:
        raise _refuse([_error(found, p.loc, p.msg) for p in problems])
    return definition


def network_to_xml(document: dict[str, Any]) -> str:
    """The definition as `virsh net-dumpxml` would print it (``status`` is not part of it)."""
    fields = {key: value for key, value in document.items() if key != "status"}
    return format_network(NetworkDefinition.model_validate(fields))
