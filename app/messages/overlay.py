"""An overlay network's desired state on one host, whole (OverlayState) or as what changed
(OverlayDelta), and the digest both sides compute of it.

The digest covers the state's head (device, peers, firewall) and the *sum* of a hash of each
remote entry, so a host that applies a delta to the table it holds, and the control worker
that reads the fleet's ports once, compute it without hashing 900 entries each time; equal
digests mean equal states, which is how a lost or reordered delta is noticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache

from pydantic import Field

from app.messages.base import Message

#: the remote-entry sum is taken modulo 2**128
_MOD = 1 << 128
#: the fields of the head a digest covers (not ``generation``: a restart of the network
#: with the same table is the same table)
DIGESTED = frozenset(
    ("network_id", "uuid", "name", "bridge", "vni", "port", "local", "flood", "peers", "allowed")
)


@lru_cache(maxsize=1 << 16)
def entry_hash(mac: str, dst: str) -> int:
    """One remote entry's share of the digest."""
    return int.from_bytes(hashlib.sha256(f"{mac.lower()} {dst}".encode()).digest()[:16], "big")


def remote_sum(entries: Iterable[tuple[str, str]]) -> int:
    """The sum of the entries' hashes; each (MAC, destination) counts once."""
    return sum(entry_hash(mac, dst) for mac, dst in set(entries)) % _MOD


def add_sums(*sums: int) -> int:
    return sum(sums) % _MOD


class OverlayHead(Message):
    """What an overlay state and a delta both carry whole: the device, the hosts that get
    broadcasts (``peers``) and the hosts allowed to send VXLAN (``allowed``)."""

    network_id: int
    generation: int
    uuid: str
    bridge: str
    vni: int
    local: str | None
    digest: str
    name: str | None = None
    port: int = 4789
    flood: bool = True
    peers: list[str] = Field(default_factory=list)
    allowed: list[str] = Field(default_factory=list)

    def digest_with(self, remote: int) -> str:
        """The digest of this head with remote entries whose hashes sum to ``remote``."""
        body = self.model_dump(mode="json", include=set(DIGESTED))
        text = json.dumps(body, sort_keys=True) + f"|{remote % _MOD:032x}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class OverlayState(OverlayHead):
    """An overlay network's desired VXLAN device, table and firewall on one host
    (app.services.overlay.Table.state); ``digest`` comes back in the report."""

    remote: list[tuple[str, str]] = Field(default_factory=list)

    def computed_digest(self) -> str:
        return self.digest_with(remote_sum(self.remote))


class OverlayDelta(OverlayHead):
    """The state of one host after a change of some guests' entries: the head is whole; of
    the table only the entries of ``macs`` are sent, and they are exactly ``remote`` (a MAC
    of ``macs`` with no entry there has none any more). ``digest`` is the whole new state's:
    a host whose table, with the delta applied, has another digest missed a change and
    asks for the whole state (OverlayReport.resync)."""

    macs: list[str] = Field(default_factory=list)
    remote: list[tuple[str, str]] = Field(default_factory=list)


class SyncOverlay(Message):
    overlay: OverlayState


class SyncOverlayDelta(Message):
    delta: OverlayDelta
