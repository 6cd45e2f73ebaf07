"""Exceptions of the kernel layer: every netlink/ioctl failure becomes one of these."""

from __future__ import annotations

import errno
import os


class KernelError(Exception):
    """A kernel operation failed; ``str(exc)`` is a message a person can act on."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno_

    def __str__(self) -> str:
        return self.message


class DeviceConflict(KernelError):
    """A device with that name exists, but virtnet did not create it or it is of another kind."""


class BridgeMissing(KernelError):
    """The bridge a port or network needs does not exist (or is not a bridge)."""


class BridgeFull(KernelError):
    """The bridge already has 1023 ports, the most a Linux bridge takes."""


class NamespaceMissing(KernelError):
    """The network namespace the HostNet was asked to work in does not exist."""


def describe_errno(code: int) -> str:
    try:
        name = errno.errorcode[code]
    except KeyError:
        name = f"errno {code}"
    return f"{os.strerror(code)} ({name})"


def from_errno(
    code: int, what: str, kernel_msg: str | None = None, *, bridge: str | None = None
) -> KernelError:
    """Turn a (positive) errno from the kernel into the exception a caller can act on.

    ``what`` says what was being done, e.g. "enslaving tap vnet0 to virbr1".
    """
    detail = describe_errno(code)
    if kernel_msg:
        detail = f"{detail}: {kernel_msg}"
    text = f"{what} failed: {detail}"
    if code == errno.EXFULL:
        return BridgeFull(
            f"{what} failed: bridge {bridge or ''} already has 1023 ports, the most a Linux "
            "bridge takes; put this guest on another network".replace("  ", " "),
            code,
        )
    if code in (errno.EPERM, errno.EACCES):
        return KernelError(f"{text}; the worker needs CAP_NET_ADMIN (run it as root)", code)
    if code == errno.EOPNOTSUPP:
        return KernelError(f"{text}; this kernel does not support it", code)
    return KernelError(text, code)


class TapBusy(KernelError):
    """A tap that a process (a hypervisor) holds open was not removed: the request said to
    leave such taps alone."""
