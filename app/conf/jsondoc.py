"""JSON documents from clients: parsed with a nesting limit, wherever they appear.

A request body and the free-form ``metadata`` object (of a network, also inside its XML, and of
a domain) may nest at most MAX_DEPTH arrays and objects: deep enough for any real document,
and far from Python's recursion limit, which json and pydantic would otherwise hit.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class TooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"the JSON nests deeper than {MAX_DEPTH} arrays and objects")


def depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in children)
    return deepest


def check_depth(value: Any) -> Any:
    if depth(value) > MAX_DEPTH:
        raise TooDeep()
    return value


def loads(raw: bytes | str) -> Any:
    """json.loads, refusing (TooDeep) documents nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise TooDeep() from None
    return check_depth(data)
