"""What can go wrong on a host, as a code the control plane and the API can tell apart; the
human message travels next to it."""

from __future__ import annotations

from enum import StrEnum


class HostErrorCode(StrEnum):
    #: a device of that name exists that virtnet did not create, or of another kind
    DEVICE_CONFLICT = "device_conflict"
    #: the bridge a port or network needs does not exist
    BRIDGE_MISSING = "bridge_missing"
    #: the bridge has the 1023 ports a Linux bridge takes
    BRIDGE_FULL = "bridge_full"
    #: the network namespace asked for does not exist
    NAMESPACE_MISSING = "namespace_missing"
    #: a process (a hypervisor) holds the tap open, and the request said to leave it
    TAP_BUSY = "tap_busy"
    #: the worker lacks a privilege (CAP_NET_ADMIN)
    NOT_PERMITTED = "not_permitted"
    #: this kernel does not support what was asked
    UNSUPPORTED = "unsupported"
    #: the kernel refused for another reason (the message says which)
    KERNEL = "kernel"
    #: a bug or an unforeseen failure on the host
    UNEXPECTED = "unexpected"
