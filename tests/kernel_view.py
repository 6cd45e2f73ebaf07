"""Kernel state read back independently of virtnet's kernel layer, with iproute2."""

from __future__ import annotations

import json
from typing import Any

from tests import netns


def links(ns: str) -> dict[str, dict[str, Any]]:
    out = netns.run(ns, "ip", "-json", "-details", "link", "show").stdout
    return {link["ifname"]: link for link in json.loads(out)}


def bridges(ns: str) -> dict[str, dict[str, Any]]:
    return {
        name: link
        for name, link in links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "bridge"
    }


def fdb(ns: str) -> list[dict[str, Any]]:
    return json.loads(netns.run(ns, "bridge", "-json", "fdb", "show").stdout or "[]")


def sysfs(ns: str, path: str) -> str:
    return netns.run(ns, "cat", f"/sys/class/net/{path}").stdout.strip()
