"""Printing XML as libvirt's virBuffer does: single quotes, two-space indents, an element a line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TEXT_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;", "\r": "&#13;"}
)
ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "'": "&apos;",
        '"': "&quot;",
        "\r": "&#13;",
        "\n": "&#10;",
        "\t": "&#9;",
    }
)
Attrs = Iterable[tuple[str, Any]]


def _value(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def as_yes_no(value: bool | None) -> str | None:
    """libvirt's yes/no attribute values; None leaves the attribute out."""
    return None if value is None else "yes" if value else "no"


class Out:
    """libvirt's virBuffer with auto-indent: two spaces a level, one element a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def _tag(self, name: str, attrs: Attrs) -> str:
        pairs = (f" {k}='{_value(v).translate(ATTR_ESCAPES)}'" for k, v in attrs if v is not None)
        return f"<{name}{''.join(pairs)}"

    def empty(self, name: str, attrs: Attrs = ()) -> None:
        self.raw(self._tag(name, attrs) + "/>")

    def open(self, name: str, attrs: Attrs = ()) -> None:
        self.raw(self._tag(name, attrs) + ">")
        self.level += 1

    def close(self, name: str) -> None:
        self.level -= 1
        self.raw(f"</{name}>")

    def text(self, name: str, text: str | None) -> None:
        if text is not None:
            self.raw(f"<{name}>{text.translate(TEXT_ESCAPES)}</{name}>")

    def raw(self, line: str) -> None:
        self.lines.append("  " * self.level + line + "\n")
