"""Hardened XML parsing: no DTD, no entities, no network, bounded size and depth."""

from __future__ import annotations

import codecs
import re
from typing import Literal

from lxml import etree

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
# A declaration is refused outright, before libxml2 sees it: nothing in a network
# definition needs one, and it is how entity-expansion and external-entity attacks start.
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class Refused(Exception):
    """The document cannot be read at all: ``kind`` says whether it is malformed or too large."""

    def __init__(
        self, kind: Literal["malformed", "too_large"], detail: str, line: int | None = None
    ) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.line = kind, detail, line


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        dtd_validation=False,
        remove_blank_text=False,
    )


def _declares(raw: bytes) -> bool:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return bool(_DECLARATION.search(raw.decode(encoding, errors="replace")))
    return bool(_DECLARATION.search(raw.decode("latin-1")))


def _depth_ok(root: etree._Element, limit: int) -> bool:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in element)
    return True


def parse(raw: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> etree._Element:
    """The root element of ``raw``; Refused when it is too big, hostile or not well-formed."""
    if len(raw) > max_bytes:
        raise Refused("too_large", f"the XML document is larger than {max_bytes} bytes")
    if _declares(raw):
        raise Refused("malformed", "DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise Refused("malformed", f"not well-formed XML: {exc.msg}", exc.lineno) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Refused("malformed", "DOCTYPE and ENTITY declarations are not allowed")
    if not _depth_ok(root, max_depth):
        raise Refused("malformed", f"elements are nested deeper than {max_depth} levels")
    return root
