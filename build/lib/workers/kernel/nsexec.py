"""Running code inside a network namespace, and the tap ioctls that must run there.

A tap is created by TUNSETIFF on a /dev/net/tun file, in the namespace of the thread that
opened the file; netlink sockets likewise belong to the namespace of their creator. So a
HostNet working in a named namespace keeps one thread that entered it (``setns`` changes
only the calling thread's namespace) and hands it those few calls. The caller's thread
never leaves its own namespace.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pyroute2 import netns as pr_netns

from .errors import NamespaceMissing, from_errno

T = TypeVar("T")

NETNS_RUN_DIR = "/var/run/netns"

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000
SIOCGIFINDEX = 0x8933
_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INDEX = struct.Struct("16si20x")


def netns_path(name: str) -> str:
    return name if "/" in name else os.path.join(NETNS_RUN_DIR, name)


class NamespaceRunner:
    """Runs callables in ``netns`` (a name under /var/run/netns or a path); None = here."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._pool: ThreadPoolExecutor | None = None
        if netns is None:
            return
        path = netns_path(netns)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NamespaceMissing(
                f"network namespace {netns!r} does not exist ({path} is missing)",
                errno.ENOENT,
            ) from None
        try:
            expected = os.fstat(fd).st_ino
            self._pool = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{netns}",
                initializer=_enter_netns,
                initargs=(fd,),
            )
            inode = self._pool.submit(_current_netns_inode).result()
        except Exception as exc:
            self.close()
            raise NamespaceMissing(
                f"cannot enter network namespace {netns!r}: {exc}", errno.EINVAL
            ) from exc
        finally:
            os.close(fd)
        if inode != expected:
            self.close()
            raise NamespaceMissing(f"{path} is not a network namespace", errno.EINVAL)

    def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pool is None:
            return fn(*args)
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _enter_netns(fd: int) -> None:
    pr_netns.setns(fd)


def _current_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@dataclass(frozen=True)
class TapRequest:
    name: str
    vnet_hdr: bool
    multi_queue: bool
    uid: int | None
    gid: int | None
    exclusive: bool
    """Fail with EBUSY when a device of that name exists (IFF_TUN_EXCL), instead of
    reopening an existing tap."""


def tap_flags(vnet_hdr: bool, multi_queue: bool) -> int:
    flags = IFF_TAP | IFF_NO_PI
    if vnet_hdr:
        flags |= IFF_VNET_HDR
    if multi_queue:
        flags |= IFF_MULTI_QUEUE
    return flags


def create_taps(requests: Sequence[TapRequest]) -> list[int]:
    """Create (or reopen) persistent taps; returns 0 or an errno for each request.

    Must run in the target namespace (see NamespaceRunner).
    """
    results: list[int] = []
    for req in requests:
        try:
            _create_tap(req)
            results.append(0)
        except OSError as exc:
            results.append(exc.errno or errno.EIO)
    return results


def _create_tap(req: TapRequest) -> None:
    fd = _open_tap(req)
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)


def _open_tap(req: TapRequest) -> int:
    flags = tap_flags(req.vnet_hdr, req.multi_queue)
    if req.exclusive:
        flags |= IFF_TUN_EXCL
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(req.name.encode(), flags))
        if req.uid is not None:
            fcntl.ioctl(fd, TUNSETOWNER, req.uid)
        if req.gid is not None:
            fcntl.ioctl(fd, TUNSETGROUP, req.gid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_new_taps(requests: Sequence[TapRequest]) -> list[int]:
    """Create taps that live only while their file is open: a file descriptor (>= 0) or a
    negative errno for each request. Must run in the target namespace.

    The caller marks each tap as virtnet's (its alias) and only then makes it persistent
    (persist_taps): a worker killed in between leaves nothing behind, because the kernel
    deletes a tap that is not persistent when its last file closes.
    """
    results: list[int] = []
    for req in requests:
        try:
            results.append(_open_tap(req))
        except OSError as exc:
            results.append(-(exc.errno or errno.EIO))
    return results


def persist_taps(fds: Sequence[int], keep: Sequence[bool]) -> None:
    """Make the taps whose ``keep`` is true persistent, then close every file: the others go."""
    for fd, wanted in zip(fds, keep, strict=True):
        try:
            if wanted:
                fcntl.ioctl(fd, TUNSETPERSIST, 1)
        finally:
            os.close(fd)


def tun_openable() -> bool:
    try:
        os.close(os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def ifindex(sock_fd: int, name: str) -> int:
    """Index of ``name`` in the namespace of the socket ``sock_fd`` (0 when absent)."""
    try:
        reply = fcntl.ioctl(sock_fd, SIOCGIFINDEX, _IFREQ_INDEX.pack(name.encode(), 0))
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return 0
        raise from_errno(exc.errno or errno.EIO, f"looking up the index of {name}") from exc
    return int(_IFREQ_INDEX.unpack(reply)[1])
