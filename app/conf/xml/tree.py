"""Editing a kept XML document in place, and printing it as libvirt prints XML.

A domain document is stored as the user wrote it and edited only where virtnet's own
fields differ from it. lxml would print it back with double quotes; ``serialize`` uses
libvirt's single quotes and escapes, so a document in libvirt's style comes back byte
for byte, and any other comes back as the same XML tree (comments included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from lxml import etree

from app.conf.xml import safe
from app.conf.xml.writer import ATTR_ESCAPES, TEXT_ESCAPES

XML_NS = "http://www.w3.org/XML/1998/namespace"
INDENT = "  "


def _name(element: etree._Element, qualified: str) -> str:
    qname = etree.QName(qualified)
    if qname.namespace is None:
        return qname.localname
    if qname.namespace == XML_NS:
        return f"xml:{qname.localname}"
    prefix = next(
        (p for p, uri in element.nsmap.items() if uri == qname.namespace and p is not None), None
    )
    if prefix is None and element.nsmap.get(None) == qname.namespace and qualified == element.tag:
        return qname.localname
    return f"{prefix}:{qname.localname}" if prefix else qname.localname


def _declared(element: etree._Element) -> list[tuple[str | None, str]]:
    parent = element.getparent()
    inherited = parent.nsmap if parent is not None else {}
    return [(p, uri) for p, uri in element.nsmap.items() if inherited.get(p) != uri]


def _write(node: etree._Element, out: list[str]) -> None:
    if isinstance(node, etree._Comment):
        out.append(f"<!--{node.text or ''}-->")
    elif isinstance(node, etree._ProcessingInstruction):
        out.append(f"<?{node.target} {node.text}?>" if node.text else f"<?{node.target}?>")
    else:
        tag = _name(node, cast(str, node.tag))  # an element's tag; comments were above
        pairs = [(_name(node, k), v) for k, v in node.attrib.items()]
        pairs += [(f"xmlns:{p}" if p else "xmlns", uri) for p, uri in _declared(node)]
        out.append(f"<{tag}" + "".join(f" {k}='{v.translate(ATTR_ESCAPES)}'" for k, v in pairs))
        if node.text is None and not len(node):
            out.append("/>")
        else:
            out.append(">" + (node.text or "").translate(TEXT_ESCAPES))
            for child in node:
                _write(child, out)
            out.append(f"</{tag}>")
    if node.getparent() is not None and node.tail:
        out.append(node.tail.translate(TEXT_ESCAPES))


def serialize(root: etree._Element) -> str:
    """The document ``root`` belongs to, with comments around it, as libvirt prints XML."""
    out: list[str] = []
    for node in reversed(list(root.itersiblings(preceding=True))):
        _write(node, out)
        out.append("\n")
    _write(root, out)
    out.append("\n")
    for node in root.itersiblings():
        _write(node, out)
        out.append("\n")
    return "".join(out)


def depth(element: etree._Element) -> int:
    return sum(1 for _ in element.iterancestors())


def _indent(parent: etree._Element) -> str | None:
    """The whitespace before each child of ``parent``; None in a document without any."""
    text = parent.text
    if len(parent):
        return text if text is not None and not text.strip() and "\n" in text else None
    before = parent.getprevious()
    up = parent.getparent()
    space = before.tail if before is not None else up.text if up is not None else "\n"
    return "\n" + INDENT * (depth(parent) + 1) if space and "\n" in space else None


def insert(parent: etree._Element, child: etree._Element, order: Sequence[str]) -> None:
    """Add ``child`` where libvirt's element ``order`` puts it, indented like its siblings.

    It goes before the first element child that comes later in ``order`` (tags not in
    ``order`` come last), else after the last child.
    """
    rank: dict[object, int] = {tag: i for i, tag in enumerate(order)}
    mine = rank.get(child.tag, len(order))
    later = [
        i
        for i, node in enumerate(parent)
        if isinstance(node.tag, str) and rank.get(node.tag, len(order)) > mine
    ]
    indent = _indent(parent)
    if not len(parent):
        parent.text = indent
        child.tail = None if indent is None else "\n" + INDENT * depth(parent)
        parent.append(child)
        return
    index = later[0] if later else len(parent)
    if index == 0:
        child.tail = indent
    else:
        before = parent[index - 1]
        child.tail, before.tail = before.tail, indent
    parent.insert(index, child)


def remove(element: etree._Element) -> None:
    """Take ``element`` out, leaving the whitespace around it as it would have been."""
    parent = element.getparent()
    if parent is None:
        return
    if element.getnext() is None:
        before = element.getprevious()
        if before is not None:
            before.tail = element.tail
        else:
            parent.text = element.tail if (element.tail or "").strip() else None
    parent.remove(element)


def replace(old: etree._Element, new: etree._Element) -> None:
    new.tail = old.tail
    parent = old.getparent()
    assert parent is not None
    parent.replace(old, new)


def element(text: str) -> etree._Element:
    """One element from its text (as printed at its indentation by app.conf.xml.writer)."""
    return safe.parse(text.strip().encode())
