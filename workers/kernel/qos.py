"""Bandwidth limits with tc through pyroute2, as libvirt's virnetdevbandwidth.c sets them.

Units are libvirt's: rates in kilobytes per second (tc's ``kbps``, 1000 bytes), bursts in
kibibytes (tc's ``kb``). Both a guest port and a network's bridge are set "swapped", as
libvirt does for them: ``inbound`` (towards the guests) shapes the device's egress with HTB,
``outbound`` (from the guests) limits its ingress. libvirt polices ingress with act_police;
where the kernel lacks it, the ingress is redirected to an IFB device and shaped there.

Every function works on any bridge port by name (a tap, or a veth's host end).
"""

from __future__ import annotations

import errno
import hashlib
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import KernelError, from_errno
from .specs import Floor, Rate, owner_alias
from .tc_u32 import add_mac_filter

KBYTE = 1000
KIBIBYTE = 1024
ROOT = 0x10000  # 1:
INGRESS = 0xFFFF0000  # ffff:
TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
ETH_P_ALL = 0x0003
UINT_MAX = 2**32 - 1
FIRST_FLOOR_CLASS = 3  # 1:1 and 1:2 are the network's own (libvirt's classIdMap)
POLICE = "police"
IFB = "ifb"


def class_handle(minor: int) -> int:
    return ROOT | minor


def ifb_name(owner: str) -> str:
    """The IFB device that shapes one port's outbound traffic: named after its owner."""
    return "vnifb" + hashlib.sha1(owner.encode()).hexdigest()[:10]


def _quantum(average: int | None) -> int:
    # libvirt's virNetDevBandwidthCmdAddOptimalQuantum, with its u32 cap
    return min(max((average or 0) * 1024 // 8 // 1500, 1), UINT_MAX)


def _bytes(kbps: int) -> int:
    return kbps * KBYTE


class Tc:
    """tc requests in one network namespace; probes what the kernel offers once."""

    def __init__(self, ipr: IPRoute) -> None:
        self.ipr = ipr
        self.police: bool | None = None
        self.sfq: bool | None = None

    def close(self) -> None:
        self.ipr.close()

    # -- look-ups

    def index(self, name: str) -> int:
        found = self.ipr.link_lookup(ifname=name)
        return int(found[0]) if found else 0

    def root_kind(self, index: int) -> str | None:
        """The kind of the device's root qdisc, from the link itself: a qdisc dump would
        list every device's qdiscs (the kernel does not filter that dump by device)."""
        links = self.ipr.link("get", index=index)
        return links[0].get_attr("IFLA_QDISC") if links else None

    def ingress_filters(self, index: int) -> list[Any]:
        """The filters on the device's ingress qdisc (none without one): a per-device dump."""
        return list(self.ipr.get_filters(index=index, parent=INGRESS))

    def htb_classes(self, index: int) -> dict[int, tuple[int, int, int]]:
        """classid -> (parent, rate, ceil) in bytes per second."""
        out = {}
        for c in self.ipr.get_classes(index=index):
            if c.get_attr("TCA_KIND") != "htb":
                continue
            parms = c.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_PARMS")
            rate64 = c.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_RATE64")
            ceil64 = c.get_attr("TCA_OPTIONS").get_attr("TCA_HTB_CEIL64")
            out[int(c["handle"])] = (
                int(c["parent"]),
                int(rate64 or parms["rate"]),
                int(ceil64 or parms["ceil"]),
            )
        return out

    def _run(self, what: str, call: Any, *args: Any, ok: tuple[int, ...] = (), **kw: Any) -> bool:
        try:
            call(*args, **kw)
        except NetlinkError as exc:
            if exc.code in ok:
                return False
            raise from_errno(exc.code, what) from None
        return True

    # -- whole devices

    def clear(self, index: int) -> None:
        """libvirt's virNetDevBandwidthClear: the root and ingress qdiscs go."""
        gone = (errno.ENOENT, errno.EINVAL, errno.ENODEV)
        self._run(
            "removing root qdisc", self.ipr.tc, "del", None, index, 0, parent=TC_H_ROOT, ok=gone
        )
        self._run("removing ingress qdisc", self.ipr.tc, "del", "ingress", index, INGRESS, ok=gone)

    def egress(self, index: int, rate: Rate, *, hierarchical: bool, what: str) -> None:
        """HTB on the device's egress: root 1: (default 1:2), classes 1:1 and 1:2, sfq 2:."""
        assert rate.average
        average, top = rate.average, rate.peak or rate.average
        extra: dict[str, Any] = {"quantum": _quantum(average)}
        if rate.burst:
            extra["burst"] = rate.burst * KIBIBYTE
        self._run(what, self.ipr.tc, "add", "htb", index, ROOT, default=2)
        first = average if hierarchical else top
        self._run(
            what,
            self.ipr.tc,
            "add-class",
            "htb",
            index,
            class_handle(1),
            parent=ROOT,
            rate=_bytes(first),
            ceil=_bytes(top),
            **extra,
        )
        self._run(
            what,
            self.ipr.tc,
            "add-class",
            "htb",
            index,
            class_handle(2),
            parent=class_handle(1),
            rate=_bytes(average),
            ceil=_bytes(top),
            **extra,
        )
        self.leaf(index, class_handle(2), 0x20000)

    def leaf(self, index: int, parent: int, handle: int) -> None:
        """libvirt's sfq leaf, where the kernel has sch_sfq (HTB's own fifo otherwise)."""
        if self.sfq is False:
            return
        try:
            self.ipr.tc("add", "sfq", index, handle, parent=parent, perturb=10)
            self.sfq = True
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.EOPNOTSUPP):
                raise from_errno(exc.code, "adding sfq leaf qdisc") from None
            self.sfq = False

    def ingress(self, index: int, owner: str, rate: Rate, what: str) -> str:
        """Limit what arrives on the device: police it, or shape it on an IFB device."""
        assert rate.average
        self._run(what, self.ipr.tc, "add", "ingress", index, INGRESS)
        if self.police is not False:
            burst = rate.burst or min(rate.average, UINT_MAX // 1024)
            police = {
                "kind": "police",
                "rate": _bytes(rate.average),
                "burst": burst * KIBIBYTE,
                "mtu": 64 * KIBIBYTE,
                "action": "drop",
            }
            try:
                self._match_all_ingress(index, police)
                self.police = True
                return POLICE
            except NetlinkError as exc:
                if exc.code not in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
                    raise from_errno(exc.code, what) from None
                self.police = False
        ifb = self.ensure_ifb(owner, rate, what)
        redirect = {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb}
        self._run(what, self._match_all_ingress, index, redirect)
        return IFB

    def _match_all_ingress(self, index: int, action: dict[str, Any]) -> None:
        """Every frame the port receives goes through ``action`` (police or redirect)."""
        self.ipr.tc(
            "add-filter",
            "u32",
            index,
            0,
            parent=INGRESS,
            prio=1,
            protocol=ETH_P_ALL,
            target=0x1,
            keys=["0x0/0x0+0"],
            action=action,
        )

    def ensure_ifb(self, owner: str, rate: Rate, what: str) -> int:
        assert rate.average
        name = ifb_name(owner)
        index = self.index(name)
        if not index:
            try:
                self.ipr.link("add", ifname=name, kind="ifb", ifalias=owner_alias(owner))
            except NetlinkError as exc:
                raise from_errno(exc.code, f"{what}: creating IFB device {name}") from None
            index = self.index(name)
        self.ipr.link("set", index=index, state="up", ifalias=owner_alias(owner))
        self.clear(index)
        top = rate.peak or rate.average
        extra: dict[str, Any] = {"quantum": _quantum(rate.average)}
        if rate.burst:
            extra["burst"] = rate.burst * KIBIBYTE
        self._run(what, self.ipr.tc, "add", "htb", index, ROOT, default=1)
        self._run(
            what,
            self.ipr.tc,
            "add-class",
            "htb",
            index,
            class_handle(1),
            parent=ROOT,
            rate=_bytes(rate.average),
            ceil=_bytes(top),
            **extra,
        )
        return index

    def remove_ifb(self, owner: str) -> bool:
        index = self.index(ifb_name(owner))
        if not index:
            return False
        link = self.ipr.link("get", index=index)[0]
        if link.get_attr("IFLA_IFALIAS") != owner_alias(owner):
            return False  # not ours: never touched
        return self._run(
            "removing IFB device", self.ipr.link, "del", index=index, ok=(errno.ENODEV,)
        )

    # -- the bridge's floor classes

    def plug_floor(self, index: int, floor: Floor, ceil: int) -> None:
        what = f"adding floor class 1:{floor.class_id:x} for {floor.mac}"
        handle = class_handle(floor.class_id)
        self._run(
            what,
            self.ipr.tc,
            "add-class",
            "htb",
            index,
            handle,
            parent=class_handle(1),
            rate=_bytes(floor.floor),
            ceil=_bytes(ceil),
            quantum=_quantum(floor.average),
        )
        self.leaf(index, handle, floor.class_id << 16)
        try:
            add_mac_filter(
                self.ipr,
                index,
                parent=ROOT,
                prio=2,
                handle=filter_handle(floor.class_id),
                mac=floor.mac,
                target=handle,
            )
        except NetlinkError as exc:
            raise from_errno(exc.code, what) from None

    def unplug_floor(self, index: int, class_id: int) -> None:
        gone = (errno.ENOENT, errno.EINVAL)
        self._run(
            "removing floor leaf",
            self.ipr.tc,
            "del",
            None,
            index,
            class_id << 16,
            parent=class_handle(class_id),
            ok=gone,
        )
        self._run(
            "removing floor filter",
            self.ipr.tc,
            "del-filter",
            "u32",
            index,
            filter_handle(class_id),
            parent=ROOT,
            prio=2,
            protocol=0x0800,
            target=0,
            keys=["0x0/0x0+0"],
            ok=gone,
        )
        self._run(
            "removing floor class",
            self.ipr.tc,
            "del-class",
            None,
            index,
            class_handle(class_id),
            ok=gone + (errno.EBUSY,),
        )

    def update_rate(
        self, index: int, minor: int, rate: int, ceil: int, average: int | None
    ) -> None:
        """libvirt's virNetDevBandwidthUpdateRate: class change with a new rate."""
        parent = ROOT if minor == 1 else class_handle(1)
        self._run(
            f"changing rate of class 1:{minor:x}",
            self.ipr.tc,
            "change-class",
            "htb",
            index,
            class_handle(minor),
            parent=parent,
            rate=_bytes(max(rate, 1)),
            ceil=_bytes(ceil),
            quantum=_quantum(average),
        )


def filter_handle(class_id: int) -> int:
    # libvirt prints "800::%u" with 800 + id in decimal, which tc reads as hexadecimal
    return 0x80000000 | int(str(800 + class_id), 16)


def require(index: int, name: str, what: str) -> int:
    if not index:
        raise KernelError(f"{what}: device {name} does not exist", errno.ENODEV)
    return index
