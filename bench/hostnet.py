"""Host network operations: HostNet beside `ip`/`bridge` subprocesses and `ip -batch`.

Run as root:  .venv/bin/python bench/hostnet.py --ports 1000

Everything happens in a throwaway network namespace (vnt-bench-...) that the script creates
and deletes, also on failure or Ctrl-C. Each method gets a fresh bridge (STP off) so the
port count a method sees does not depend on the methods before it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from workers.kernel import BridgeSpec, HostNet, PortRef, PortSpec, nl, nsexec
from workers.kernel import ports as ports_mod

# After taps come up without a reader (no carrier) the kernel's linkwatch deactivates their
# queues later, 100 devices per second, one expedited RCU grace period each, holding RTNL
# for ~30-40 ms a second. Phases wait for that to end so they do not slow each other down.
QUIET_MS = 2.0
QUIET_FOR_S = 1.5
SETTLE_MAX_S = 30.0


@dataclass
class Row:
    operation: str
    method: str
    samples: list[float] = field(default_factory=list)  # seconds, one per operation
    batch_total: float | None = None  # one batch of n operations
    n: int = 0
    span: bool = False  # batch_total is a stretch of wall-clock time, not work per port

    def cells(self) -> list[str]:
        if self.span:
            return [self.operation, self.method, str(self.n), "", "", self._total()]
        if self.batch_total is not None:
            per = self.batch_total / self.n * 1e3
            return [self.operation, self.method, str(self.n), f"{per:.3f}*", "", self._total()]
        ms = sorted(s * 1e3 for s in self.samples)
        p90 = statistics.quantiles(ms, n=10)[-1] if len(ms) > 1 else ms[0]
        return [
            self.operation,
            self.method,
            str(len(ms)),
            f"{statistics.median(ms):.3f}",
            f"{p90:.3f}",
            self._total(),
        ]

    def _total(self) -> str:
        total = self.batch_total if self.batch_total is not None else sum(self.samples)
        return f"{total:.3f} s"


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, check=True, input=stdin, text=True, capture_output=True)


@contextmanager
def namespace() -> Iterator[str]:
    name = f"vnt-bench-{secrets.token_hex(3)}"
    run("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def guest_mac(i: int) -> str:
    return f"52:54:00:{i >> 16 & 0xFF:02x}:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"


def specs(bridge: str, n: int) -> list[PortSpec]:
    return [
        PortSpec(f"{bridge}p{i}", bridge, guest_mac(i), f"bench-{i}", mac_table_manager="libvirt")
        for i in range(n)
    ]


def settle(net: HostNet) -> float:
    """Wait until RTNL is free again; returns how long the kernel kept it busy. (It reads a
    device that does not exist: the kernel layer refuses reserved names like "lo".)"""
    start = last_stall = time.perf_counter()
    while True:
        took = timed(net.port_state, "vnsettle0")
        now = time.perf_counter()
        if took * 1e3 > QUIET_MS:
            last_stall = now
        elif now - last_stall > QUIET_FOR_S or now - start > SETTLE_MAX_S:
            return max(0.0, last_stall - start)
        time.sleep(0.005)


def deferred(method: str, net: HostNet, n: int) -> Row:
    row = Row("kernel busy after plug (linkwatch)", method, n=n, span=True)
    row.batch_total = settle(net)
    return row


# ------------------------------------------------------------------ bridges


def bench_bridges(ns: str, net: HostNet, n: int) -> list[Row]:
    create, delete = Row("bridge create", "HostNet"), Row("bridge delete", "HostNet")
    ip_create, ip_delete = Row("bridge create", "ip"), Row("bridge delete", "ip")
    for i in range(n):
        spec = BridgeSpec(f"bb{i}", "bench", mtu=1500, stp=False)
        create.samples.append(timed(net.ensure_bridge, spec))
    for i in range(n):
        delete.samples.append(timed(net.remove_bridge, f"bb{i}", "bench"))
    for i in range(n):
        ip_create.samples.append(
            timed(
                run,
                "ip",
                "-n",
                ns,
                "link",
                "add",
                f"ib{i}",
                "mtu",
                "1500",
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            )
            + timed(run, "ip", "-n", ns, "link", "set", f"ib{i}", "up", "alias", "virtnet:bench")
        )
    for i in range(n):
        ip_delete.samples.append(timed(run, "ip", "-n", ns, "link", "del", f"ib{i}"))
    return [create, ip_create, delete, ip_delete]


# ------------------------------------------------------------------ ports


def new_bridge(net: HostNet, name: str) -> None:
    net.ensure_bridge(BridgeSpec(name, "bench", mtu=1500, stp=False))


def bench_hostnet_single(net: HostNet, bridge: str, ports: list[PortSpec]) -> list[Row]:
    plug = Row("port plug (whole sequence)", "HostNet.plug")
    unplug = Row("port unplug (fdb del + tap del)", "HostNet.unplug")
    for spec in ports:
        plug.samples.append(timed(net.plug, spec))
    busy = deferred("HostNet.plug", net, len(ports))
    for s in ports:
        unplug.samples.append(timed(net.unplug, s.tap, s.owner, s.bridge, s.guest_mac))
    return [plug, busy, unplug]


def bench_hostnet_batch(net: HostNet, bridge: str, ports: list[PortSpec]) -> list[Row]:
    n = len(ports)
    plug = Row("port plug (whole sequence)", "HostNet.plug_many", n=n)
    replug = Row("port plug again (no-op)", "HostNet.plug_many", n=n)
    unplug = Row("port unplug (fdb del + tap del)", "HostNet.unplug_many", n=n)
    start = time.perf_counter()
    errors = net.plug_many(ports)
    plug.batch_total = time.perf_counter() - start
    if any(errors):
        raise SystemExit(f"plug_many failed: {[e for e in errors if e][:3]}")
    busy = deferred("HostNet.plug_many", net, n)
    replug.batch_total = timed(net.plug_many, ports)
    settle(net)
    refs = [PortRef(s.tap, s.owner, s.bridge, s.guest_mac) for s in ports]
    unplug.batch_total = timed(net.unplug_many, refs)
    return [plug, busy, replug, unplug]


def bench_hostnet_steps(net: HostNet, bridge: str, ports: list[PortSpec]) -> list[Row]:
    """The netlink requests HostNet.plug/unplug send, one at a time, to see which step costs
    what. Uses HostNet's internals (its socket and namespace thread) on purpose."""
    sock, runner = net._sock, net._runner
    rows = {
        k: Row(f"  {k}", "HostNet, one request")
        for k in (
            "tap create",
            "look-up (linkwatch sync)",
            "mac/mtu/alias + enslave + up",
            "learning/unicast_flood off",
            "static FDB add",
            "static FDB del",
            "tap delete",
        )
    }
    bridge_index = nsexec.ifindex(sock.fileno(), bridge)
    skip_stats = nl.nla_u32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS)
    indexes = []
    for s in ports:
        tap = nsexec.TapRequest(s.tap, s.vnet_hdr, s.multi_queue, None, None, True)
        rows["tap create"].samples.append(timed(runner.run, nsexec.create_taps, [tap]))
        index = nsexec.ifindex(sock.fileno(), s.tap)
        indexes.append(index)
        link = (
            nl.ifinfomsg(index, nl.IFF_UP, nl.IFF_UP)
            + nl.nla_mac(nl.IFLA_ADDRESS, "fe" + s.guest_mac[2:])
            + nl.nla_u32(nl.IFLA_MTU, 1500)
            + nl.nla_str(nl.IFLA_IFALIAS, f"virtnet:{s.owner}")
            + nl.nla_u32(nl.IFLA_MASTER, bridge_index)
        )
        flags = nl.ifinfomsg(index) + nl.nla_nest(
            nl.IFLA_LINKINFO,
            nl.nla_str(nl.IFLA_INFO_SLAVE_KIND, "bridge"),
            nl.nla_nest(
                nl.IFLA_INFO_SLAVE_DATA,
                nl.nla_u8(nl.IFLA_BRPORT_LEARNING, 0),
                nl.nla_u8(nl.IFLA_BRPORT_UNICAST_FLOOD, 0),
            ),
        )
        for key, body, kind in (
            ("look-up (linkwatch sync)", nl.ifinfomsg(index) + skip_stats, nl.RTM_GETLINK),
            ("mac/mtu/alias + enslave + up", link, nl.RTM_NEWLINK),
            ("learning/unicast_flood off", flags, nl.RTM_NEWLINK),
        ):
            rows[key].samples.append(timed(sock.request, kind, body))
        add = ports_mod.fdb_request(index, s.guest_mac, True)
        rows["static FDB add"].samples.append(timed(sock.transact, [add]))
    settle(net)
    for s, index in zip(ports, indexes, strict=True):
        delete = ports_mod.fdb_request(index, s.guest_mac, False)
        rows["static FDB del"].samples.append(timed(sock.transact, [delete]))
        rows["tap delete"].samples.append(timed(sock.request, nl.RTM_DELLINK, nl.ifinfomsg(index)))
    return list(rows.values())


def bench_ip_commands(ns: str, net: HostNet, bridge: str, ports: list[PortSpec]) -> list[Row]:
    steps = {
        "tap create": Row("  tap create", "ip tuntap"),
        "enslave": Row("  mac/mtu/alias + enslave + up", "ip link set"),
        "flags": Row("  learning/unicast_flood off", "bridge link set"),
        "fdb": Row("  static FDB add", "bridge fdb replace"),
        "fdb del": Row("  static FDB del", "bridge fdb del"),
        "tap del": Row("  tap delete", "ip link del"),
    }
    plug = Row("port plug (whole sequence)", "ip/bridge per command")
    unplug = Row("port unplug (fdb del + tap del)", "ip/bridge per command")
    ip = ("ip", "-n", ns)
    for s in ports:
        host_mac = "fe" + s.guest_mac[2:]
        parts = [
            ("tap create", (*ip, "tuntap", "add", "dev", s.tap, "mode", "tap", "vnet_hdr")),
            (
                "enslave",
                (
                    *ip,
                    "link",
                    "set",
                    "dev",
                    s.tap,
                    "address",
                    host_mac,
                    "mtu",
                    "1500",
                    "master",
                    bridge,
                    "up",
                    "alias",
                    f"virtnet:{s.owner}",
                ),
            ),
            (
                "flags",
                (
                    "bridge",
                    "-n",
                    ns,
                    "link",
                    "set",
                    "dev",
                    s.tap,
                    "learning",
                    "off",
                    "flood",
                    "off",
                ),
            ),
            (
                "fdb",
                (
                    "bridge",
                    "-n",
                    ns,
                    "fdb",
                    "replace",
                    s.guest_mac,
                    "dev",
                    s.tap,
                    "master",
                    "static",
                ),
            ),
        ]
        total = 0.0
        for key, argv in parts:
            took = timed(run, *argv)
            steps[key].samples.append(took)
            total += took
        plug.samples.append(total)
    busy = deferred("ip/bridge per command", net, len(ports))
    for s in ports:
        a = timed(run, "bridge", "-n", ns, "fdb", "del", s.guest_mac, "dev", s.tap, "master")
        b = timed(run, *ip, "link", "del", s.tap)
        steps["fdb del"].samples.append(a)
        steps["tap del"].samples.append(b)
        unplug.samples.append(a + b)
    keys = ("tap create", "enslave", "flags", "fdb")
    return [plug, *(steps[k] for k in keys), busy, unplug, steps["fdb del"], steps["tap del"]]


def bench_ip_batch(ns: str, net: HostNet, bridge: str, ports: list[PortSpec]) -> list[Row]:
    n = len(ports)
    plug = Row("port plug (whole sequence)", "ip -batch + bridge -batch", n=n)
    unplug = Row("port unplug (fdb del + tap del)", "bridge -batch + ip link del group", n=n)
    links, fdb_add, fdb_del, group = [], [], [], []
    for s in ports:
        links += [
            f"tuntap add dev {s.tap} mode tap vnet_hdr",
            f"link set dev {s.tap} address fe{s.guest_mac[2:]} mtu 1500 master {bridge} up "
            f"alias virtnet:{s.owner}",
        ]
        fdb_add.append(f"link set dev {s.tap} learning off flood off")
        fdb_add.append(f"fdb replace {s.guest_mac} dev {s.tap} master static")
        fdb_del.append(f"fdb del {s.guest_mac} dev {s.tap} master")
        group.append(f"link set dev {s.tap} group 4242")
    group.append("link del group 4242")

    def batch(tool: str, lines: list[str]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".batch") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            run(tool, "-n", ns, "-batch", f.name)

    plug.batch_total = timed(batch, "ip", links) + timed(batch, "bridge", fdb_add)
    busy = deferred("ip -batch + bridge -batch", net, n)
    unplug.batch_total = timed(batch, "bridge", fdb_del) + timed(batch, "ip", group)
    return [plug, busy, unplug]


# ------------------------------------------------------------------ main


def print_table(rows: list[Row]) -> None:
    head = ["operation", "method", "n", "median ms", "p90 ms", "total"]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for i, line in enumerate(table):
        print(
            " | ".join(
                c.ljust(w) if j < 2 else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print("* one batch: median = total / n (time per port, amortised)")
    print("linkwatch rows: how long after the last plug RTNL kept stalling (>2 ms) requests")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000, help="ports per method (<= 1023)")
    parser.add_argument("--bridges", type=int, default=20, help="bridges to create/delete")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (creates a network namespace)", file=sys.stderr)
        return 2
    if not 1 <= args.ports <= 1023:
        parser.error("--ports must be within 1..1023 (a bridge takes at most 1023 ports)")
    # SIGTERM unwinds like Ctrl-C, so the namespace is deleted either way
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows: list[Row] = []
    with namespace() as ns, HostNet(ns) as net:
        print(
            f"kernel {os.uname().release}, {os.cpu_count()} CPUs, namespace {ns}, "
            f"{args.ports} ports per method",
            flush=True,
        )
        rows += bench_bridges(ns, net, args.bridges)
        for name, bench in (
            ("brs", bench_hostnet_single),
            ("brp", bench_hostnet_steps),
            ("brm", bench_hostnet_batch),
            ("bri", partial(bench_ip_commands, ns)),
            ("brb", partial(bench_ip_batch, ns)),
        ):
            new_bridge(net, name)
            settle(net)
            rows += bench(net, name, specs(name, args.ports))
            net.remove_bridge(name, "bench")
            settle(net)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
