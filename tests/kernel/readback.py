"""Reading kernel state back independently of HostNet: iproute2 JSON, sysfs, raw taps."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import time
from typing import Any

from tests import netns

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def links(ns: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        ["ip", "-n", ns, "-json", "-details", "link", "show"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {link["ifname"]: link for link in json.loads(out)}


def taps(ns: str) -> dict[str, dict[str, Any]]:
    """Every tap (tun/tap device) in the namespace, by name."""
    return {n: x for n, x in links(ns).items() if x.get("linkinfo", {}).get("info_kind") == "tun"}


def link(ns: str, name: str) -> dict[str, Any] | None:
    return links(ns).get(name)


def fdb(ns: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["bridge", "-n", ns, "-json", "fdb", "show"], check=True, capture_output=True, text=True
    ).stdout
    entries: list[dict[str, Any]] = json.loads(out or "[]")
    return entries


def static_entries(ns: str, mac: str | None = None) -> list[dict[str, Any]]:
    """Static master FDB entries (what `bridge fdb` prints as `... master br static`)."""
    return [
        e
        for e in fdb(ns)
        if e.get("state") == "static" and "master" in e and (mac is None or e["mac"] == mac)
    ]


def sysfs(ns: str, path: str) -> str:
    return netns.run(ns, "cat", f"/sys/class/net/{path}").stdout.strip()


def ip(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "-n", ns, *argv], check=True, capture_output=True, text=True)


def info_data(link_json: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = link_json.get("linkinfo", {}).get("info_data", {})
    return data


def slave_data(link_json: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = link_json.get("linkinfo", {}).get("info_slave_data", {})
    return data


# ---------------------------------------------------------------- frames through taps


def open_tap(ns: str, name: str) -> int:
    """Attach to the persistent tap ``name`` in ``ns`` like QEMU does (IFF_TAP|IFF_NO_PI)."""

    def attach() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
        except BaseException:
            os.close(fd)
            raise
        return fd

    return netns.in_namespace(ns, attach)


def frame(dst: str, src: str, token: bytes) -> bytes:
    """An Ethernet frame with the local experimental ethertype 0x88b5 carrying ``token``."""
    payload = token.ljust(46, b"\0")
    return (
        bytes.fromhex(dst.replace(":", ""))
        + bytes.fromhex(src.replace(":", ""))
        + (b"\x88\xb5" + payload)
    )


def received(
    fds: dict[str, int], token: bytes, expect: set[str], wait: float = 0.3, patience: float = 3.0
) -> set[str]:
    """Names of the taps whose fd delivered a frame carrying ``token``.

    Listens ``wait`` s; while ``expect`` (a hint, not checked) has not all arrived, up to
    ``patience`` s, so a loaded machine does not turn a late frame into a failure. Other
    traffic (IPv6 neighbour discovery, MLD from the bridge) is read and ignored.
    """
    got: set[str] = set()
    start = time.monotonic()
    by_fd = {fd: name for name, fd in fds.items()}
    while True:
        elapsed = time.monotonic() - start
        left = (wait if expect <= got else patience) - elapsed
        if left <= 0:
            return got
        ready, _, _ = select.select(list(by_fd), [], [], left)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if data[12:14] == b"\x88\xb5" and data[14:].startswith(token):
                got.add(by_fd[fd])


def wait_forwarding(ns: str, bridge: str, taps: list[str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {t: sysfs(ns, f"{bridge}/brif/{t}/state") for t in taps}
        if all(s == "3" for s in states.values()):  # BR_STATE_FORWARDING
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"bridge ports not forwarding: {states}")
        time.sleep(0.05)


class Monitor:
    """`bridge monitor fdb link` in ``ns``, with marker events to know what it has seen.

    ``mark()`` creates a throwaway bridge in the namespace and waits until the monitor
    reports it: everything that happened before is then in ``events``.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.events: list[str] = []
        self._marks = 0
        self._pending = ""
        self._proc = subprocess.Popen(
            ["bridge", "-n", ns, "monitor", "fdb", "link"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def mark(self, timeout: float = 10.0) -> list[str]:
        """Wait for a fresh marker; return the events seen before it (markers left out)."""
        assert self._proc.stdout is not None
        name = f"vntmark{self._marks}"
        self._marks += 1
        deadline = time.monotonic() + timeout
        ip(self.ns, "link", "add", name, "type", "bridge")
        seen: list[str] = []
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            # raw reads: a buffered reader could hold lines select() does not know about
            self._pending += os.read(fd, 65536).decode()
            *lines, self._pending = self._pending.split("\n")
            for i, line in enumerate(lines):
                if f" {name}:" in line:
                    self._pending = "".join(f"{rest}\n" for rest in lines[i + 1 :]) + self._pending
                    return seen
                if "vntmark" not in line:
                    seen.append(line)
                    self.events.append(line)
        raise AssertionError(f"monitor never reported {name}; saw {seen}")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.communicate(timeout=5)
