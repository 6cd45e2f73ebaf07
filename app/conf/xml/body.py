"""Request bodies in libvirt XML: the shared safe parser, and errors that name the XML.

Each error of a refusal names the element or attribute
(``/domain/devices/interface[2]/mac/@address``) and its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree
from pydantic import ValidationError

from app.conf.errors import InvalidDocument, error_location
from app.conf.xml import safe
from app.conf.xml.reader import Findings


def error(found: Findings, loc: Sequence[str | int], message: str) -> dict[str, Any]:
    where = found.locate(loc)
    return {"field": where.path, "line": where.line, "message": message}


def refuse(errors: list[dict[str, Any]]) -> InvalidDocument:
    shown = [
        f"{e['field']}" + (f" (line {e['line']})" if e.get("line") else "") + f": {e['message']}"
        for e in errors[:3]
    ]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidDocument("invalid", "; ".join(shown) + more, errors)


def parse_body(raw: bytes) -> etree._Element:
    """A request body's root element through the shared safe parser, or InvalidDocument."""
    try:
        return safe.parse(raw)
    except safe.Refused as exc:
        error = {"field": "(document)", "line": exc.line, "message": exc.detail}
        raise InvalidDocument(exc.kind, exc.detail, [error]) from None


def located(found: Findings, exc: ValidationError, skip: tuple[str, ...] = ()) -> Exception:
    """The model's errors as an invalid document naming each XML element or attribute and line.

    ``skip``: the tags pydantic puts in a location inside a tagged union (a plug's type).
    """
    messages = [
        (tuple(p for p in loc if p not in skip), message)
        for loc, message in map(error_location, exc.errors())
    ]
    return refuse([error(found, loc, message) for loc, message in messages])
