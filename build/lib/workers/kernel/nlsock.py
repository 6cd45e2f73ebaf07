"""A pipelining rtnetlink socket: many requests per send, one Reply for each."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .errors import KernelError, from_errno
from .nl import (
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_ROUTE,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    SOL_NETLINK,
    attr_str,
    parse_attrs,
)

_NLMSGHDR = struct.Struct("=IHHII")
_ERR = struct.Struct("=i")

# acks are queued in the socket's receive buffer while the kernel works through a batch;
# a bounded batch keeps them from overflowing it (an overflow loses acks: ENOBUFS).
_BATCH_MESSAGES = 256
_RCVBUF = 4 << 20
# no rtnetlink request virtnet makes takes long; a lost answer must not hang a worker
_TIMEOUT_S = 60.0


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
