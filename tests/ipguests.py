"""IP network test helpers: guests and an upstream as namespaces joined to a host by veth pairs.

A guest is a namespace whose ``eth0`` is a veth whose peer is a port of the network's bridge
on the host; the upstream is a namespace behind a veth from the host (the "outside").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import netns
from tests.cluster import wait_for

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "$ip" > "$LEASE_OUT" ;;
esac
exit 0
"""


def ip(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "-n", ns, *argv], check=True, capture_output=True, text=True)


def addrs(ns: str, dev: str, scope: str = "global", *, settled: bool = False) -> list[str]:
    """The addresses of ``dev`` in ``scope``; ``settled``: only those past duplicate address
    detection (a tentative IPv6 address cannot be used yet)."""
    out = subprocess.run(
        ["ip", "-n", ns, "-json", "addr", "show", "dev", dev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in json.loads(out)
        for a in link["addr_info"]
        if a.get("scope") == scope and not (settled and a.get("tentative"))
    ]


def ruleset(ns: str) -> list[dict[str, Any]]:
    out = netns.run(ns, "nft", "-j", "list", "ruleset").stdout
    return [i for i in json.loads(out)["nftables"] if "metainfo" not in i]


def virtnet_tables(ns: str) -> list[str]:
    return [i["table"]["name"] for i in ruleset(ns) if "table" in i]


def attach_guest(host_ns: str, bridge: str, guest_ns: str, tag: str, mac: str) -> None:
    """veth pair: ``eth0`` (with ``mac``) in the guest, ``tag`` on the host's bridge."""
    ip(host_ns, "link", "add", tag, "type", "veth", "peer", "name", "eth0", "netns", guest_ns)
    ip(host_ns, "link", "set", tag, "master", bridge, "up")
    ip(guest_ns, "link", "set", "eth0", "address", mac, "up")
    ip(guest_ns, "link", "set", "lo", "up")


def add_upstream(host_ns: str, up_ns: str, host_addr: str, up_addr: str) -> None:
    """A link from the host to the 'outside': ``vnup`` on the host, ``eth0`` upstream."""
    ip(host_ns, "link", "add", "vnup", "type", "veth", "peer", "name", "eth0", "netns", up_ns)
    ip(host_ns, "addr", "add", host_addr, "dev", "vnup")
    ip(host_ns, "link", "set", "vnup", "up")
    ip(up_ns, "addr", "add", up_addr, "dev", "eth0")
    ip(up_ns, "link", "set", "eth0", "up")
    ip(up_ns, "link", "set", "lo", "up")


def dhcp(guest_ns: str, tmp: Path, hostname: str | None = None, tries: int = 12) -> str | None:
    """Run busybox udhcpc once in the guest; the leased address (and it is configured)."""
    script = tmp / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    out = tmp / f"lease-{guest_ns}"
    out.unlink(missing_ok=True)
    argv = ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script)]
    argv += ["-t", str(tries), "-T", "1", "-A", "1"]
    if hostname:
        argv += ["-x", f"hostname:{hostname}"]
    subprocess.run(
        ["ip", "netns", "exec", guest_ns, "env", f"LEASE_OUT={out}", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.read_text().strip() if out.exists() else None


def resolve(guest_ns: str, name: str, server: str) -> str | None:
    """The first address ``server`` gives for ``name`` (busybox nslookup in the guest)."""
    done = netns.run(guest_ns, "busybox", "nslookup", name, server, check=False)
    answers = done.stdout.split("Name:", 1)
    if len(answers) < 2:
        return None
    for line in answers[1].splitlines():
        if line.strip().startswith("Address"):
            return line.split(":", 1)[1].strip().split()[0]
    return None


def ping(ns: str, addr: str, count: int = 1, wait: int = 2) -> bool:
    cmd = "ping6" if ":" in addr else "ping"
    done = netns.run(ns, "busybox", cmd, "-c", str(count), "-W", str(wait), addr, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def listener(ns: str, addr: str, port: int) -> Iterator[socket.socket]:
    """A TCP socket listening in ``ns``."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    def make() -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(4)
        s.settimeout(10)
        return s

    sock = netns.in_namespace(ns, make)
    try:
        yield sock
    finally:
        sock.close()


def peer_seen(server: socket.socket, guest_ns: str, addr: str, port: int) -> str | None:
    """Connect from the guest to ``server``; the source address the server saw, or None."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    def connect() -> socket.socket | None:
        c = socket.socket(family, socket.SOCK_STREAM)
        c.settimeout(3)
        try:
            c.connect((addr, port))
        except OSError:
            c.close()
            return None
        return c

    client = netns.in_namespace(guest_ns, connect)
    if client is None:
        return None
    try:
        conn, peer = server.accept()
        conn.close()
        return str(peer[0])
    finally:
        client.close()


def dnsmasq_pids(ns: str) -> list[int]:
    """dnsmasq processes whose network namespace is ``ns``."""
    target = os.stat(f"/var/run/netns/{ns}").st_ino
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            if comm != "dnsmasq":
                continue
            if os.stat(f"/proc/{entry}/ns/net").st_ino != target:
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.append(int(entry))
    return sorted(pids)


def dnsmasq_state_dir(stack: contextlib.ExitStack) -> Path:
    """A state dir dnsmasq can read once it is 'nobody' (it re-reads its hosts files on
    SIGHUP), which pytest's private tmp (0700, shared by other sessions) is not; removed when
    ``stack`` closes."""
    state = Path(tempfile.mkdtemp(prefix="vnt-state-", dir="/tmp"))
    state.chmod(0o755)
    stack.callback(shutil.rmtree, state, True)
    return state


def kill_dnsmasqs(ns: str) -> None:
    for pid in dnsmasq_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def traversable(path: Path) -> None:
    """dnsmasq drops root for 'nobody', then re-reads its hosts files on SIGHUP: the test's
    private temp folders must let it through (a real state dir is 0755)."""
    for part in [path, *path.parents]:
        if str(part) in ("/", "/tmp"):
            break
        part.chmod(part.stat().st_mode | 0o005)


def _daemonised(pid: int) -> bool:
    """True once ``pid`` is the dnsmasq that wrote its own pid file: dnsmasq forks to
    daemonise, and the process that starts it is briefly the only dnsmasq there is."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        conf = next(a for a in args if a.startswith(b"--conf-file=")).split(b"=", 1)[1]
        written = (Path(conf.decode()).parent / "dnsmasq.pid").read_text().strip()
    except (OSError, StopIteration, UnicodeDecodeError):
        return False
    return written == str(pid)


def wait_one_dnsmasq(ns: str, timeout: float = 5.0, other_than: int | None = None) -> int:
    def one() -> int | None:
        pids = dnsmasq_pids(ns)
        if len(pids) == 1 and pids[0] != other_than and _daemonised(pids[0]):
            return pids[0]
        return None

    return wait_for(one, timeout=timeout, what=f"one dnsmasq in {ns}")


def settle(seconds: float) -> None:
    time.sleep(seconds)
