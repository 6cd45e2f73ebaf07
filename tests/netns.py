"""Throwaway network namespaces for tests: ``vnt-`` + a random suffix, always deleted."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000

PREFIX = "vnt-"
RUN_DIR = "/var/run/netns"


def can_create_namespaces() -> bool:
    """True when this process may create network namespaces (root, with `ip` installed)."""
    if os.geteuid() != 0:
        return False
    try:
        subprocess.run(["ip", "-V"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def new_name(tag: str = "") -> str:
    # `ip netns` names become file names; keep them short and unique
    return f"{PREFIX}{tag}{secrets.token_hex(4)}"


def create(tag: str = "") -> str:
    return create_named(new_name(tag))


def create_named(name: str) -> str:
    """Create the test namespace ``name`` (from new_name) and return it."""
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to create namespace {name!r}: not a test namespace")
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
    return name


def delete(name: str) -> None:
    """Delete a namespace this module created; quiet when it is already gone."""
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to delete namespace {name!r}: not a test namespace")
    if os.path.exists(os.path.join(RUN_DIR, name)):
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@contextlib.contextmanager
def namespace(tag: str = "") -> Iterator[str]:
    """A fresh network namespace, deleted on exit whatever happens inside."""
    name = create(tag)
    try:
        yield name
    finally:
        delete(name)


def run(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command inside ``ns`` (``ip netns exec``)."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True
    )


def leftovers() -> list[str]:
    """Test namespaces that still exist (for a final check)."""
    try:
        return sorted(n for n in os.listdir(RUN_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


def in_namespace(ns: str, fn: Callable[..., T], *args: object) -> T:
    """Call ``fn`` in a short-lived thread that entered ``ns``; the caller's thread (and so
    the test process) never leaves its own namespace. File descriptors opened there (a tap,
    a socket) stay bound to ``ns`` and are usable from any thread."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(RUN_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns({ns}): {os.strerror(code)}")
            finally:
                os.close(fd)
            result.append(fn(*args))
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name=f"in-{ns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
