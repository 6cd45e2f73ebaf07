"""libvirt's own network XML test data, read where it lives (never copied into the project)."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "libvirt-9.0.0" / "network"
IN, OUT = CORPUS / "in", CORPUS / "out"


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.xml")) if folder.is_dir() else []


def tree(text: bytes | str) -> etree._Element:
    """An element tree without comments and with whitespace-only text dropped."""
    data = text.encode() if isinstance(text, str) else text
    root = etree.fromstring(data, etree.XMLParser(remove_comments=True, resolve_entities=False))
    for node in root.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return root


def as_tuple(node: etree._Element) -> tuple:
    """A comparable form: tag, attributes (order ignored), text, children in order."""
    return (node.tag, dict(node.attrib), node.text, [as_tuple(child) for child in node])


def drop_generated(actual: etree._Element, expected: etree._Element, given: etree._Element) -> None:
    """Remove what define generated because ``given`` (the in/ file) lacked it.

    Only a uuid (libvirt's parser generates one too), a virbrN bridge name and a
    52:54:00 MAC are ever generated; anything else that differs is a real difference.
    """
    if given.find("uuid") is None:
        actual.remove(actual.find("uuid"))
        expected.remove(expected.find("uuid"))
    bridge, given_bridge = actual.find("bridge"), given.find("bridge")
    if bridge is not None and (given_bridge is None or given_bridge.get("name") is None):
        assert re.fullmatch(r"virbr\d+", bridge.get("name", "")), etree.tostring(bridge)
        del bridge.attrib["name"]
        if not bridge.attrib:
            actual.remove(bridge)
    mac = actual.find("mac")
    if mac is not None and given.find("mac") is None:
        assert mac.get("address", "").startswith("52:54:00:"), etree.tostring(mac)
        actual.remove(mac)
