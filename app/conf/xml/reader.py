"""Reading one XML element at a time, remembering where each model field came from.

Every element and attribute read is recorded under the model location it fills
(``("ips", 0, "dhcp", "hosts", 1, "mac")``), so that any later error about that
location — from the reader, from pydantic or from app.conf.network.validate — can name the XML
element or attribute and its line. Anything not read is refused: libvirt would
ignore it, and virtnet does not drop what a user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

Loc = tuple[str | int, ...]
Doc = dict[str, Any]
Convert = Callable[[str], Any]
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Where:
    path: str
    line: int | None


@dataclass
class Findings:
    where: dict[Loc, Where] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    root: str = "/network"  # where a location no element was recorded for points

    def add(self, path: str, line: int | None, message: str) -> None:
        self.errors.append({"field": path, "line": line, "message": message})

    def locate(self, loc: Sequence[str | int]) -> Where:
        """The XML place of a model location: the deepest recorded one that contains it."""
        loc = tuple(loc)
        while loc and loc not in self.where:
            if (*loc, 0) in self.where:  # a whole list: name its first element
                return self.where[(*loc, 0)]
            loc = loc[:-1]
        return self.where.get(loc, Where(self.root, None))


def label(element: etree._Element) -> str:
    qname = etree.QName(element)
    prefix = element.prefix
    return f"{prefix}:{qname.localname}" if prefix and qname.namespace else qname.localname


class Node:
    """One element being read; ``finish`` refuses whatever was not read."""

    def __init__(self, element: etree._Element, path: str, loc: Loc, found: Findings) -> None:
        self.element, self.path, self.loc, self.found = element, path, loc, found
        self.line = element.sourceline
        self._read_attrs: set[str] = set()
        self._read_tags: set[str] = set()
        self._read_all = False
        found.where.setdefault(loc, Where(path, self.line))

    def fail(self, message: str, attr: str | None = None) -> None:
        self.found.add(f"{self.path}/@{attr}" if attr else self.path, self.line, message)

    def attr(
        self, name: str, convert: Convert = str, *, loc: Loc | None = None, required: bool = False
    ) -> Any:
        """The attribute converted, or None when absent or wrong (wrong is recorded)."""
        self._read_attrs.add(name)
        if loc is not None:
            self.found.where[loc] = Where(f"{self.path}/@{name}", self.line)
        raw = self.element.get(name)
        if raw is None:
            if required:
                self.fail(f"<{label(self.element)}> needs a {name} attribute")
            return None
        try:
            return convert(raw)
        except ValueError as exc:
            self.fail(f"{name}={raw!r}: {exc}", name)
            return None

    def children(self, tag: str, loc: Loc) -> list[Node]:
        """Every child element named ``tag``; the i-th fills model location ``loc + (i,)``."""
        self._read_tags.add(tag)
        found = [c for c in self.element if c.tag == tag]
        return [
            Node(c, f"{self.path}/{label(c)}[{i + 1}]", (*loc, i), self.found)
            for i, c in enumerate(found)
        ]

    def child(self, tag: str, loc: Loc | None = None) -> Node | None:
        """The one child element named ``tag``; a second one is an error."""
        self._read_tags.add(tag)
        found = [c for c in self.element if c.tag == tag]
        if len(found) > 1:
            extra = found[1]
            message = f"<{label(extra)}> can appear only once here"
            self.found.add(f"{self.path}/{label(extra)}", extra.sourceline, message)
        if not found:
            return None
        return Node(found[0], f"{self.path}/{label(found[0])}", loc or self.loc, self.found)

    def rest(self) -> list[etree._Element]:
        """The child elements no other call asked for; they count as read."""
        self._read_all = True
        return [c for c in self.element if isinstance(c.tag, str) and c.tag not in self._read_tags]

    def text(self) -> str:
        """The element's text; it must not hold elements."""
        for child in self.element:
            if isinstance(child.tag, str):
                message = f"<{label(child)}> is not allowed in <{label(self.element)}>"
                self.found.add(self.path, child.sourceline, message)
        return "".join(self.element.itertext())

    def finish(self, *, text: bool = False) -> None:
        for name in self.element.attrib:
            if name not in self._read_attrs:
                shown = etree.QName(name).localname if name.startswith("{") else name
                self.fail(f"unknown attribute {shown!r} on <{label(self.element)}>", shown)
        if not text and (leftover := (self.element.text or "").strip()):
            self.fail(f"unexpected text {leftover[:40]!r}")
        for child in self.element:
            unread = child.tag not in self._read_tags and not self._read_all
            if isinstance(child.tag, str) and unread:
                message = f"unknown element <{label(child)}> in <{label(self.element)}>"
                self.found.add(f"{self.path}/{label(child)}", child.sourceline, message)
            if not text and (tail := (child.tail or "").strip()):
                message = f"unexpected text {tail[:40]!r}"
                self.found.add(self.path, child.sourceline, message)


def yes_no(raw: str) -> bool:
    if raw not in ("yes", "no"):
        raise ValueError("must be 'yes' or 'no'")
    return raw == "yes"


def on_off(raw: str) -> bool:
    if raw not in ("on", "off"):
        raise ValueError("must be 'on' or 'off'")
    return raw == "on"


def uint(raw: str) -> int:
    if not _DIGITS.fullmatch(raw):
        raise ValueError("must be a whole number")
    return int(raw)


def any_base(raw: str) -> int:
    """A number as libvirt reads it with strtol base 0: 0x hex, leading-0 octal, decimal."""
    try:
        if raw[:2].lower() == "0x":
            return int(raw[2:], 16)
        if len(raw) > 1 and raw.startswith("0"):
            return int(raw[1:], 8)
        return uint(raw)
    except ValueError:
        raise ValueError("must be a number (decimal, or hexadecimal as 0x…)") from None


def one_of(*values: str) -> Convert:
    def convert(raw: str) -> str:
        if raw not in values:
            raise ValueError("must be one of " + ", ".join(repr(v) for v in values))
        return raw

    return convert


def put(doc: Doc, key: str, value: Any) -> None:
    """Set ``doc[key]`` unless ``value`` is None (absent in the XML)."""
    if value is not None:
        doc[key] = value


def read_attrs(
    node: Node, doc: Doc, spec: dict[str, tuple[str, Any]], required: tuple[str, ...] = ()
) -> Doc:
    """Read attributes ``{xml name: (model key, converter)}`` into ``doc``."""
    for name, (key, convert) in spec.items():
        value = node.attr(name, convert, loc=(*node.loc, key), required=name in required)
        put(doc, key, value)
    return doc


def child_text(parent: Node, tag: str, loc: Loc) -> str | None:
    """The text of ``parent``'s child ``tag`` (which has no attributes nor children)."""
    node = parent.child(tag, loc)
    if node is None:
        return None
    text = node.text()
    node.finish(text=True)
    return text


def single(root: Node, doc: Doc, tag: str, attr: str, key: str, convert: Any = str) -> None:
    """Read the one attribute ``attr`` of ``root``'s child ``tag`` as ``doc[key]``."""
    node = root.child(tag, (key,))
    if node is not None:
        put(doc, key, node.attr(attr, convert, loc=(key,), required=True))
        node.finish()
