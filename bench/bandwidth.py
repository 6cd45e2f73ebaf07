"""What isolation and bandwidth add to plugging a port, on the host, in a throwaway namespace.

Run as root:  .venv/bin/python bench/bandwidth.py [--ports 200]

Each row plugs ``--ports`` ports one call each (HostNet.plug_many with one spec, as a
single hot-plug does) and prints the median and p90 milliseconds per port: a plain port,
an isolated one, one with inbound and outbound limits (HTB on the tap, and an IFB device
on this kernel without act_police), and one with a floor class on the bridge as well.
Then the same ports are unplugged (IFB devices and floor classes go with them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests import netns  # noqa: E402
from workers.kernel import BridgeSpec, HostNet, PortSpec  # noqa: E402
from workers.kernel.specs import Bandwidth, Floor, Rate  # noqa: E402

LIMITS = Bandwidth(Rate(1000, 2000, 64), Rate(500))


def spec(kind: str, i: int) -> PortSpec:
    mac = f"52:54:00:b0:{i >> 8:02x}:{i & 0xFF:02x}"
    base = {
        "tap": f"vb{kind[0]}{i}",
        "bridge": "vnbench0",
        "guest_mac": mac,
        "owner": f"{kind}-{i}",
    }
    if kind == "isolated":
        return PortSpec(**base, isolated=True)
    if kind == "limits":
        return PortSpec(**base, bandwidth=LIMITS, qos=True)
    if kind == "floor":
        bw = Bandwidth(Rate(1000, floor=1), Rate(500))
        return PortSpec(**base, bandwidth=bw, qos=True, class_id=3 + i, floor=Floor(3 + i, mac, 1))
    return PortSpec(**base)


def timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=200)
    n = parser.parse_args().ports
    print(f"{'ports':<10} {'plug median':>12} {'p90':>8} {'unplug median':>14} {'p90':>8}  (ms)")
    with netns.namespace("bench") as ns, HostNet(ns) as host:
        host.ensure_bridge(BridgeSpec("vnbench0", "bench", stp=False))
        host.ensure_bridge_bandwidth("vnbench0", "bench", Bandwidth(Rate(10**6)))
        for kind in ("plain", "isolated", "limits", "floor"):
            specs = [spec(kind, i) for i in range(n)]
            plugs, unplugs = iter(specs), iter(specs)
            plug = timed(lambda: host.plug_many([next(plugs)]), n)  # noqa: B023
            unplug = timed(lambda: host.unplug_many([next(unplugs)]), n)  # noqa: B023
            q = statistics.quantiles
            print(
                f"{kind:<10} {statistics.median(plug):>12.2f} {q(plug, n=10)[-1]:>8.2f} "
                f"{statistics.median(unplug):>14.2f} {q(unplug, n=10)[-1]:>8.2f}"
            )


if __name__ == "__main__":
    main()
