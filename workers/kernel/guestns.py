"""Containers' network namespaces: used as found, or created by virtnet and later removed.

virtnet removes only a namespace it created itself. Which ones those are is written down
before creating one, in a marker file under ``MARKER_DIR`` (on tmpfs, so it lives exactly
as long as the namespaces' own bind mounts under /var/run/netns). The marker also names the
host namespace of the worker that made it, so simulated hosts sharing one machine never
remove each other's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from .errors import KernelError
from .nsexec import NETNS_RUN_DIR
from .specs import ALIAS_PREFIX

MARKER_DIR = os.environ.get("VIRTNET_NETNS_MARKERS", "/run/virtnet/netns")
_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,63}$")


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise KernelError(
            f"{what}: {name!r} is not a network namespace name virtnet uses "
            "(1-64 of A-Z a-z 0-9 _ . + -, not starting with '.' or '-')",
            errno.EINVAL,
        )


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def _marker(name: str) -> str:
    return os.path.join(MARKER_DIR, name)


def created_by_virtnet(name: str, host_netns: str) -> bool:
    try:
        with open(_marker(name)) as f:
            return bool(json.load(f).get("host_netns") == host_netns)
    except (OSError, ValueError):
        return False


def ensure(name: str, host_netns: str) -> bool:
    """Make sure namespace ``name`` exists; True when virtnet created it (now or before)."""
    check_name(name, "preparing a container's namespace")
    if os.path.exists(path(name)):
        return created_by_virtnet(name, host_netns)
    os.makedirs(MARKER_DIR, exist_ok=True)
    # the marker first: a worker killed between the two leaves a marker without a namespace
    # (harmless), never a namespace of its own making that it would not recognise
    with open(_marker(name), "w") as f:
        json.dump({"host_netns": host_netns}, f)
    try:
        pr_netns.create(name)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise KernelError(
                f"creating network namespace {name}: {exc}", exc.errno or errno.EIO
            ) from exc
    with IPRoute(netns=name) as ipr:
        ipr.link("set", index=1, state="up")  # lo, as a container expects it
    return True


def virtnet_devices(name: str) -> list[str]:
    """Interfaces in namespace ``name`` that virtnet created (its alias on them)."""
    if not os.path.exists(path(name)):
        return []
    with IPRoute(netns=name) as ipr:
        return [
            link.get_attr("IFLA_IFNAME")
            for link in ipr.get_links()
            if (link.get_attr("IFLA_IFALIAS") or "").startswith(ALIAS_PREFIX)
        ]


def remove_if_unused(name: str, host_netns: str) -> bool:
    """Remove ``name`` if virtnet created it and no interface of virtnet is left in it."""
    if not created_by_virtnet(name, host_netns) or virtnet_devices(name):
        return False
    if os.path.exists(path(name)):
        pr_netns.remove(name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_marker(name))
    return True


def created(host_netns: str) -> list[str]:
    """The namespaces virtnet created for this host (from its markers)."""
    try:
        names = os.listdir(MARKER_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if created_by_virtnet(n, host_netns))
