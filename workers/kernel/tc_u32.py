"""A u32 filter matching a destination MAC, sent with pyroute2's tc message classes.

pyroute2's u32 key parser packs keys into a 0..255 byte table, so it cannot express the
negative offsets (relative to the network header) that select an Ethernet address. These
subclasses take the keys ready-made, as ``tc filter ... u32 match ... at -14`` sends them.
"""

from __future__ import annotations

import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, nla
from pyroute2.netlink.rtnl import RTM_NEWTFILTER
from pyroute2.netlink.rtnl.tcmsg import cls_u32, tcmsg

ETH_P_IP = 0x0800
TC_U32_TERMINAL = 1


class _KeysSel(cls_u32.options.u32_sel):
    def encode(self) -> None:
        keys: list[tuple[int, int, int]] = self["keys"]
        self["nkeys"] = len(keys)
        self["flags"] = TC_U32_TERMINAL
        nla.encode(self)
        offset = self.offset + 20  # nla header + selector fields
        for value, mask, off in keys:
            key = self.u32_key(data=self.data)
            key.offset = offset
            key["key_mask"], key["key_val"], key["key_off"], key["key_offmask"] = (
                mask,
                value,
                off,
                0,
            )
            key.encode()
            offset += 16
        self.length = offset - self.offset
        struct.pack_into("H", self.data, self.offset, self.length)


class _KeysOptions(cls_u32.options):
    u32_sel = _KeysSel
    _nlmsg_base__compiled_nla = False  # compile this class's own table, not the parent's


class _FilterMsg(tcmsg):
    _nlmsg_base__compiled_nla = False

    @staticmethod
    def get_options(self: Any, *argv: Any, **kwarg: Any) -> Any:
        return _KeysOptions


def mac_keys(mac: str) -> list[tuple[int, int, int]]:
    """libvirt's match: IPv4 ethertype, then the destination MAC (network header offsets)."""
    raw = bytes.fromhex(mac.replace(":", ""))
    return [
        (ETH_P_IP, 0x0000FFFF, -4),  # u16 0x0800 at -2
        (int.from_bytes(raw[2:6], "big"), 0xFFFFFFFF, -12),
        (int.from_bytes(raw[0:2], "big"), 0x0000FFFF, -16),  # u16 at -14
    ]


def add_mac_filter(
    ipr: Any, index: int, *, parent: int, prio: int, handle: int, mac: str, target: int
) -> None:
    msg = _FilterMsg()
    msg["index"] = index
    msg["handle"] = handle
    msg["parent"] = parent
    msg["info"] = (prio << 16) | struct.unpack("<H", struct.pack(">H", ETH_P_IP))[0]
    msg["attrs"] = [
        ["TCA_KIND", "u32"],
        [
            "TCA_OPTIONS",
            {"attrs": [["TCA_U32_CLASSID", target], ["TCA_U32_SEL", {"keys": mac_keys(mac)}]]},
        ],
    ]
    msg["header"]["type"] = RTM_NEWTFILTER
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    ipr.nlm_request_batch([msg])
