"""An underlay for overlay tests: host namespaces joined by veth pairs to one bridge in a
namespace of its own, with an underlay address on each host's end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests import netns
from tests.kernel import readback as rb

SUBNET = "10.231.0"
#: not an address of any host: a stranger on the underlay
STRANGER = f"{SUBNET}.250"


def address(i: int) -> str:
    return f"{SUBNET}.{i + 1}"


@contextlib.contextmanager
def underlay(count: int, tag: str = "o") -> Iterator[tuple[str, list[str]]]:
    """(underlay namespace, [host namespaces]); host i has address(i) on its "ul0"."""
    with contextlib.ExitStack() as stack:
        wire = stack.enter_context(netns.namespace(f"{tag}u"))
        hosts = [stack.enter_context(netns.namespace(f"{tag}{i}")) for i in range(count)]
        rb.ip(wire, "link", "add", "ul", "type", "bridge", "stp_state", "0")
        rb.ip(wire, "link", "set", "ul", "up")
        for i, ns in enumerate(hosts):
            # created in the wire namespace, one end moved into the host: nothing in ours
            rb.ip(wire, "link", "add", f"p{i}", "type", "veth", "peer", "name", "ul0")
            rb.ip(wire, "link", "set", "ul0", "netns", ns)
            rb.ip(wire, "link", "set", f"p{i}", "master", "ul", "up")
            rb.ip(ns, "addr", "add", f"{address(i)}/24", "dev", "ul0")
            rb.ip(ns, "link", "set", "ul0", "up")
            rb.ip(ns, "link", "set", "lo", "up")
        yield wire, hosts


def add_stranger(wire: str) -> None:
    """An address on the underlay that belongs to no host (on the wire bridge itself)."""
    rb.ip(wire, "addr", "add", f"{STRANGER}/24", "dev", "ul")
