"""Request bodies in libvirt XML: the shared safe parser, and errors that name the XML.

Refusals reuse app.conf.network.xml's shape: each error names the element or attribute
(``/domain/devices/interface[2]/mac/@address``) and its line.
"""

from __future__ import annotations

from lxml import etree
from pydantic import ValidationError

from app.conf.errors import InvalidDocument
from app.conf.network.xml import _error as error
from app.conf.network.xml import _refuse as refuse
from app.conf.xml import safe
from app.conf.xml.reader import Findings

__all__ = ["error", "located", "parse_body", "refuse"]


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
        (tuple(p for p in e["loc"] if p not in skip), e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]
    return refuse([error(found, loc, message) for loc, message in messages])
