"""The <metadata> of a network: foreign elements kept verbatim, and virtnet's own element.

libvirt keeps each child of <metadata> as an opaque element in its own XML namespace and
reformats it with libxml2's indentation. virtnet stores each child as a canonical string
(ignorable whitespace dropped, unused namespace declarations removed), so that printing
and parsing it again gives the same string.
"""

from __future__ import annotations

import copy

from lxml import etree

from app.conf.xml.safe import Refused, parse

#: Namespace of the element that carries what JSON says and libvirt's XML cannot:
#: ``autostart`` and the free-form ``metadata`` object.
VIRTNET_NS = "urn:virtnet:network:1.0"
VIRTNET_PREFIX = "virtnet"
VIRTNET_TAG = f"{{{VIRTNET_NS}}}network"
#: ``<virtnet:overlay type='vxlan' vni='42' port='4789' gatewayHost='h1'/>``
OVERLAY_TAG = f"{{{VIRTNET_NS}}}overlay"


def _blank(text: str | None) -> bool:
    return text is not None and not text.strip()


def _strip_blanks(element: etree._Element) -> None:
    for node in element.iter():
        if len(node) and _blank(node.text):
            node.text = None
        if node is not element and _blank(node.tail):
            node.tail = None


def canonical(element: etree._Element) -> str:
    """``element`` (any namespaced element) as virtnet stores it."""
    if not isinstance(element.tag, str) or not etree.QName(element).namespace:
        raise ValueError("a metadata element needs its own XML namespace, e.g. <app:x xmlns:app=…>")
    if etree.QName(element).namespace == VIRTNET_NS:
        raise ValueError(f"the namespace {VIRTNET_NS} is virtnet's own")
    mine = copy.deepcopy(element)
    mine.tail = None
    _strip_blanks(mine)
    etree.cleanup_namespaces(mine)
    return etree.tostring(mine, encoding="unicode")


def canonical_text(text: str) -> str:
    """A metadata element given as a string (the JSON view), checked and made canonical."""
    try:
        return canonical(parse(text.encode()))
    except Refused as exc:
        raise ValueError(exc.detail) from None


def _indent(element: etree._Element, level: int) -> None:
    """What libxml2's formatter does: indent element-only content, leave mixed content alone."""
    children = list(element)
    if not children or element.text is not None or any(c.tail is not None for c in children):
        return
    element.text = "\n" + "  " * (level + 1)
    for child in children:
        child.tail = "\n" + "  " * (level + 1)
        _indent(child, level + 1)
    children[-1].tail = "\n" + "  " * level


def format_metadata(elements: list[str], level: int) -> str:
    """The <metadata> element holding ``elements``, indented for ``level`` (no leading spaces)."""
    metadata = etree.Element("metadata")
    for text in elements:
        metadata.append(parse(text.encode()))
    _indent(metadata, level)
    return etree.tostring(metadata, encoding="unicode")
