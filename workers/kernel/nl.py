"""A minimal rtnetlink codec and a pipelining socket.

pyroute2 0.9 costs ~0.12 ms to encode one message and ~1 ms to decode one RTM_NEWLINK
reply, which alone would eat the 1 ms per-port budget; the handful of messages virtnet
needs are encoded here with ``struct`` and only the attributes we read are decoded.
Many requests go to the kernel in one ``send`` and their acks are collected afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .errors import KernelError, from_errno

# netlink
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

# rtnetlink
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
AF_UNSPEC = 0
AF_BRIDGE = 7
IFF_UP = 0x1

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_GROUP = 27
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 8
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_STP_STATE = 5
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_LEARNING = 8
IFLA_BRPORT_UNICAST_FLOOD = 9
IFLA_BRPORT_MCAST_FLOOD = 27
IFLA_BRPORT_BCAST_FLOOD = 30
IFLA_TUN_OWNER = 1
IFLA_TUN_GROUP = 2
IFLA_TUN_TYPE = 3
IFLA_TUN_PI = 4
IFLA_TUN_VNET_HDR = 5
IFLA_TUN_PERSIST = 6
IFLA_TUN_MULTI_QUEUE = 7

NDA_LLADDR = 2
NDA_MASTER = 9
NTF_SELF = 0x2
NTF_MASTER = 0x4
NUD_REACHABLE = 0x2
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_NDMSG = struct.Struct("=BxxxiHBB")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_ERR = struct.Struct("=i")

# acks are queued in the socket's receive buffer while the kernel works through a batch;
# a bounded batch keeps them from overflowing it (an overflow loses acks: ENOBUFS).
_BATCH_MESSAGES = 256
_RCVBUF = 4 << 20
# no rtnetlink request virtnet makes takes long; a lost answer must not hang a worker
_TIMEOUT_S = 60.0


# ---------------------------------------------------------------- encoding


def nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def nla_str(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


def nla_u32(kind: int, value: int) -> bytes:
    return nla(kind, _U32.pack(value & 0xFFFFFFFF))


def nla_u8(kind: int, value: int) -> bytes:
    return nla(kind, bytes((value,)))


def nla_mac(kind: int, mac: str) -> bytes:
    return nla(kind, mac_bytes(mac))


def nla_nest(kind: int, *children: bytes) -> bytes:
    return nla(kind | NLA_F_NESTED, b"".join(children))


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    return _IFINFOMSG.pack(family, 0, index, flags, change)


def ndmsg(ifindex: int, state: int, flags: int, family: int = AF_BRIDGE) -> bytes:
    return _NDMSG.pack(family, ifindex, state, flags, 0)


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# ---------------------------------------------------------------- decoding


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        attrs[kind & NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return attrs


def attr_str(attrs: dict[int, bytes], kind: int) -> str | None:
    raw = attrs.get(kind)
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def attr_u32(attrs: dict[int, bytes], kind: int) -> int | None:
    raw = attrs.get(kind)
    return None if raw is None or len(raw) < 4 else _U32.unpack_from(raw)[0]


def attr_u8(attrs: dict[int, bytes], kind: int) -> int | None:
    raw = attrs.get(kind)
    return None if not raw else raw[0]


@dataclass
class Link:
    """The parts of an RTM_NEWLINK message virtnet looks at."""

    index: int
    name: str
    flags: int
    mtu: int | None
    mac: str | None
    alias: str | None
    master: int | None
    kind: str | None
    info: dict[int, bytes] = field(default_factory=dict)
    slave_kind: str | None = None
    slave_info: dict[int, bytes] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def parse_link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body, _IFINFOMSG.size)
    linkinfo = parse_attrs(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    address = attrs.get(IFLA_ADDRESS)
    return Link(
        index=index,
        name=attr_str(attrs, IFLA_IFNAME) or "",
        flags=flags,
        mtu=attr_u32(attrs, IFLA_MTU),
        mac=mac_str(address) if address and len(address) == 6 else None,
        alias=attr_str(attrs, IFLA_IFALIAS),
        master=attr_u32(attrs, IFLA_MASTER),
        kind=attr_str(linkinfo, IFLA_INFO_KIND),
        info=parse_attrs(linkinfo[IFLA_INFO_DATA]) if IFLA_INFO_DATA in linkinfo else {},
        slave_kind=attr_str(linkinfo, IFLA_INFO_SLAVE_KIND),
        slave_info=(
            parse_attrs(linkinfo[IFLA_INFO_SLAVE_DATA])
            if IFLA_INFO_SLAVE_DATA in linkinfo
            else {}
        ),
    )


@dataclass
class Neigh:
    ifindex: int
    state: int
    flags: int
    mac: str | None
    master: int | None


def parse_neigh(body: bytes) -> Neigh:
    _family, ifindex, state, flags, _type = _NDMSG.unpack_from(body)
    attrs = parse_attrs(body, _NDMSG.size)
    lladdr = attrs.get(NDA_LLADDR)
    return Neigh(
        ifindex=ifindex,
        state=state,
        flags=flags,
        mac=mac_str(lladdr) if lladdr and len(lladdr) == 6 else None,
        master=attr_u32(attrs, NDA_MASTER),
    )


# ---------------------------------------------------------------- socket


@dataclass
class Request:
    type: int
    body: bytes
    flags: int = 0


@dataclass
class Reply:
    error: int = 0
    """0 or a positive errno."""
    message: str | None = None
    """The kernel's extended ack text, when it gave one."""
    payloads: list[bytes] = field(default_factory=list)


class NetlinkSocket:
    """An rtnetlink socket; its network namespace is the one of the thread that created it."""

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            try:
                sock.setsockopt(socket.SOL_SOCKET, 33, _RCVBUF)  # SO_RCVBUFFORCE
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((0, 0))
            sock.settimeout(_TIMEOUT_S)
            rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._seq = 0
        self._buf = bytearray(1 << 18)
        self._lock = threading.Lock()
        # a link reply takes up to ~4 KiB of receive buffer; without the privilege to force a
        # large buffer, smaller batches keep the answers from overflowing it
        self._batch_size = max(16, min(_BATCH_MESSAGES, rcvbuf // 8192))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def transact(self, requests: Sequence[Request]) -> list[Reply]:
        """Send requests (acked, pipelined in batches) and return one Reply for each."""
        replies: list[Reply] = []
        size = self._batch_size
        with self._lock, _as_kernel_error("netlink request"):
            for start in range(0, len(requests), size):
                replies.extend(self._batch(requests[start : start + size]))
        return replies

    def request(self, type_: int, body: bytes, flags: int = 0) -> Reply:
        return self.transact([Request(type_, body, flags)])[0]

    def dump(self, type_: int, body: bytes) -> list[bytes]:
        """A dump request; returns the message bodies."""
        with self._lock, _as_kernel_error("netlink dump"):
            seq = self._next_seq()
            self._send(_header(type_, NLM_F_REQUEST | NLM_F_DUMP, seq, body) + body)
            out: list[bytes] = []
            while True:
                for mtype, _mflags, mseq, payload in self._recv():
                    if mseq != seq:
                        continue
                    if mtype == NLMSG_DONE:
                        return out
                    if mtype == NLMSG_ERROR:
                        code, message = _parse_error(payload, _mflags)
                        if code:
                            raise from_errno(code, "netlink dump", message)
                        return out
                    out.append(payload)

    # -- internals

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq

    def _batch(self, requests: Sequence[Request]) -> list[Reply]:
        by_seq: dict[int, Reply] = {}
        chunks: list[bytes] = []
        for req in requests:
            seq = self._next_seq()
            by_seq[seq] = Reply()
            flags = NLM_F_REQUEST | NLM_F_ACK | req.flags
            chunks.append(_header(req.type, flags, seq, req.body))
            chunks.append(req.body)
        order = list(by_seq.values())
        self._send(b"".join(chunks))
        pending = len(by_seq)
        while pending:
            for mtype, mflags, mseq, payload in self._recv():
                found = by_seq.get(mseq)
                if found is None:
                    continue  # a late answer to an interrupted earlier batch
                if mtype == NLMSG_ERROR:
                    found.error, found.message = _parse_error(payload, mflags)
                    pending -= 1
                else:
                    found.payloads.append(payload)
        return order

    def _send(self, data: bytes) -> None:
        self.sock.sendto(data, (0, 0))

    def _recv(self) -> Iterable[tuple[int, int, int, bytes]]:
        n = self.sock.recv_into(self._buf)
        data = bytes(memoryview(self._buf)[:n])
        offset = 0
        while offset + _NLMSGHDR.size <= n:
            length, mtype, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            yield mtype, flags, seq, data[offset + _NLMSGHDR.size : offset + length]
            offset += (length + 3) & ~3


@contextlib.contextmanager
def _as_kernel_error(what: str) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise KernelError(f"{what}: no answer from the kernel in {_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise from_errno(exc.errno or errno.EIO, what) from exc


def _header(type_: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), type_, flags, seq, 0)


def _parse_error(payload: bytes, flags: int) -> tuple[int, str | None]:
    code = -_ERR.unpack_from(payload)[0]
    if not flags & NLM_F_ACK_TLVS:
        return code, None
    # the echoed request is only its header when capped (NETLINK_CAP_ACK); TLVs follow it
    tlv_at = 4 + _NLMSGHDR.size
    if not flags & NLM_F_CAPPED:
        tlv_at = 4 + _NLMSGHDR.unpack_from(payload, 4)[0]
    return code, attr_str(parse_attrs(payload, tlv_at), NLMSGERR_ATTR_MSG)
