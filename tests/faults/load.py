"""Load for the fault suite (ports created with ?wait by concurrent clients) and the checks
that follow a fault: nothing left in flight, the database equals the kernel, and every answer
a client got tells the truth about what happened."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.rig import HOST, NETWORK, Rig
from tests.kernel import readback

OWNER = {"name": "fault-load", "uuid": "0d6c1f7e-2a3b-4c5d-8e9f-a0b1c2d3e4f5"}
PORTS = 200
CLIENTS = 8
#: what each request asks the API to wait for its operation; the clients' own timeout is longer
WAIT_SECONDS = 10
#: after the load ends, the time the system has to converge on its own
CONVERGE_SECONDS = 30


@dataclass
class Outcome:
    mac: str
    #: None: no answer at all (connection refused or reset, timeout)
    status: int | None
    port_id: str | None = None
    detail: str = ""


@dataclass
class Load:
    """``ports`` 2xx answers wanted from ``clients`` threads; a failed attempt is recorded and
    the next one uses a fresh MAC, so every request's fate can be checked on its own."""

    rig: Rig
    tag: int
    ports: int = PORTS
    clients: int = CLIENTS
    limit_seconds: float = 120
    outcomes: list[Outcome] = field(default_factory=list)
    ok: int = 0
    _inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: Any = field(default_factory=itertools.count)

    def mac(self, i: int) -> str:
        return f"52:54:00:{self.tag:02x}:{i >> 8:02x}:{i & 0xFF:02x}"

    def run(self, fault: Callable[[], None], after: int) -> float:
        """The load, with ``fault`` injected (blocking) once ``after`` ports are answered;
        returns how long the whole load took."""
        start = time.monotonic()
        deadline = start + self.limit_seconds
        with ThreadPoolExecutor(self.clients + 1) as pool:
            clients = [pool.submit(self._client, deadline) for _ in range(self.clients)]
            while self.ok < after and not all(c.done() for c in clients):
                time.sleep(0.01)
            fault()
            for c in clients:
                c.result()
        return time.monotonic() - start

    def _client(self, deadline: float) -> None:
        path = f"/v1/networks/{NETWORK}/ports?wait={WAIT_SECONDS}"
        with httpx.Client(
            base_url=self.rig.c.base, headers=self.rig.c.headers, timeout=WAIT_SECONDS + 20
        ) as client:
            while True:
                with self._lock:
                    if self.ok + self._inflight >= self.ports or time.monotonic() > deadline:
                        return
                    self._inflight += 1
                    mac = self.mac(next(self._next))
                try:
                    r = client.post(path, json={"owner": OWNER, "host": HOST, "mac": mac})
                    good = r.is_success
                    outcome = Outcome(
                        mac,
                        r.status_code,
                        r.json().get("id") if good else None,
                        "" if good else r.text[:300],
                    )
                except httpx.HTTPError as exc:
                    good, outcome = False, Outcome(mac, None, detail=repr(exc))
                with self._lock:
                    self._inflight -= 1
                    self.ok += good
                    self.outcomes.append(outcome)
                if not good:
                    time.sleep(0.2)

    def summary(self) -> str:
        codes = Counter(str(o.status) if o.status else "no answer" for o in self.outcomes)
        first: dict[int | None, str] = {}
        for o in self.outcomes:
            if o.status is None or o.status >= 300:
                first.setdefault(o.status, o.detail[:200])
        examples = "".join(f"\n  {status}: {detail}" for status, detail in first.items())
        return ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())) + examples


def problems(rig: Rig, outcomes: list[Outcome]) -> list[str]:
    """Everything that is not as it must be once the system has converged (empty: all good)."""
    found: list[str] = []
    ports = rig.sql(
        "SELECT id, mac, tap, bridge, state, error, fdb, mac_table_manager, host, operation_id "
        "FROM ports"
    )
    for port in ports:
        if port["state"] != "plugged":
            found.append(
                f"port {port['id']} ({port['mac']}, {port['tap']}) is {port['state']}"
                + (f": {port['error']}" if port["error"] else "")
            )
    for op in rig.sql("SELECT id, kind, target FROM operations WHERE state = 'running'"):
        found.append(f"operation {op['id']} {op['kind']} {op['target']} still running")
    if (state := rig.host_state()) != "up":
        found.append(f"host {HOST} is {state} (its heartbeats do not get through)")
    found += kernel_differences(rig.ns, [p for p in ports if p["host"] == HOST])
    found += broken_answers(outcomes, {p["mac"]: p for p in ports})
    return found


def kernel_differences(ns: str, ports: list[dict[str, Any]]) -> list[str]:
    """The host's kernel, read back with `ip -json -details link` and `bridge -json fdb`,
    against the plugged ports of the database: taps, masters, MACs, flags, static entries."""
    found: list[str] = []
    links = readback.links(ns)
    taps = {
        n: link for n, link in links.items() if link.get("linkinfo", {}).get("info_kind") == "tun"
    }
    wanted = {p["tap"]: p for p in ports if p["state"] == "plugged"}
    for name in sorted(set(wanted) - set(taps)):
        found.append(f"tap {name} of plugged port {wanted[name]['id']} is missing on the host")
    for name in sorted(set(taps) - set(wanted)):
        found.append(f"tap {name} exists on the host with no plugged port")
    for name in sorted(set(taps) & set(wanted)):
        port, link = wanted[name], taps[name]
        if link.get("master") != port["bridge"]:
            found.append(f"tap {name}: master {link.get('master')}, want {port['bridge']}")
        if link.get("address") != "fe" + port["mac"][2:]:
            found.append(f"tap {name}: address {link.get('address')}, want fe{port['mac'][2:]}")
        if "UP" not in link.get("flags", []):
            found.append(f"tap {name} is not up")
        learn = port["mac_table_manager"] != "libvirt"
        data = readback.slave_data(link)
        for flag in ("learning", "flood"):
            if data.get(flag) is not learn:
                found.append(f"tap {name}: {flag} {data.get(flag)}, want {learn}")
    static = {(e["mac"], e.get("ifname"), e.get("master")) for e in readback.static_entries(ns)}
    want_static = {
        (p["mac"], p["tap"], p["bridge"])
        for p in wanted.values()
        if p["mac_table_manager"] == "libvirt" and p["fdb"]
    }
    for mac, dev, master in sorted(want_static - static):
        found.append(f"static FDB entry {mac} dev {dev} master {master} is missing")
    for mac, dev, master in sorted(static - want_static):
        found.append(f"static FDB entry {mac} dev {dev} master {master} has no plugged port")
    return found


def in_doubt(o: Outcome) -> bool:
    """A 503 that says the commit was on its way when the database went: it may have happened
    (nobody can tell; the client is told to look), so a row is allowed, if it takes effect."""
    return o.status == 503 and "may or may not" in o.detail


def broken_answers(outcomes: list[Outcome], by_mac: dict[str, dict[str, Any]]) -> list[str]:
    """A 2xx with no port (whether plugged is checked for every port); a 4xx or 5xx whose
    request committed after all, unless it said it might have."""
    found: list[str] = []
    for o in outcomes:
        row = by_mac.get(o.mac)
        if o.status is not None and 200 <= o.status < 300:
            if row is None:
                found.append(f"{o.mac}: answered {o.status} (port {o.port_id}) but has no row")
            elif o.port_id is not None and row["id"] != o.port_id:
                found.append(f"{o.mac}: answered {o.status} for {o.port_id}, row is {row['id']}")
        elif o.status is not None and row is not None and not in_doubt(o):
            found.append(
                f"{o.mac}: answered {o.status} yet committed (port {row['id']} {row['state']}): "
                f"{o.detail[:160]}"
            )
    return found


def converge(rig: Rig, outcomes: list[Outcome], within: float = CONVERGE_SECONDS) -> float:
    """Wait until there are no problems; how long that took (fails after ``within`` s)."""
    start = time.monotonic()
    while True:
        found = problems(rig, outcomes)
        if not found:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            shown = "\n".join(found[:25]) + (
                f"\n... {len(found) - 25} more" if len(found) > 25 else ""
            )
            raise AssertionError(f"not converged {within:.0f} s after the load:\n{shown}")
        time.sleep(0.5)


def no_ports(rig: Rig, within: float = 30) -> None:
    """Start the next fault from no ports at all: a forced stop of the network takes its 200
    ports in one operation (200 DELETEs cost about as much as the load); one by one if not."""
    left = rig.sql("SELECT count(*) AS n FROM ports")[0]["n"]
    if not left and not kernel_differences(rig.ns, []):
        _wait_empty(rig, within)  # for operations left running
    else:
        _take_ports_away(rig, within)
    if not rig.network_active():
        r = rig.http("POST", f"/v1/networks/{NETWORK}/start")
        assert r.status_code == 200, r.text
        rig.wait(rig.network_active, within, f"network {NETWORK} active again")


def _take_ports_away(rig: Rig, within: float) -> None:
    try:
        r = rig.http("POST", f"/v1/networks/{NETWORK}/stop?force=true")
        assert r.status_code in (200, 409), r.text  # 409: stopped already
        _wait_empty(rig, within)
    except (AssertionError, httpx.HTTPError) as exc:
        warnings.warn(f"a forced stop did not take the ports away ({exc}); deleting", stacklevel=1)
        ids = [p["id"] for p in rig.sql("SELECT id FROM ports")]

        def delete(port_id: str) -> None:
            # whatever the answer, what counts is checked below: the database and the kernel
            with contextlib.suppress(httpx.HTTPError):
                rig.http("DELETE", f"/v1/networks/{NETWORK}/ports/{port_id}?wait=20")

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(delete, ids))
        _wait_empty(rig, within)


def _wait_empty(rig: Rig, within: float) -> None:
    start = time.monotonic()
    while True:
        left = rig.sql("SELECT count(*) AS n FROM ports")[0]["n"]
        found = kernel_differences(rig.ns, [])
        running = rig.sql("SELECT id, kind, target FROM operations WHERE state = 'running'")
        if not left and not found and not running:
            return
        if time.monotonic() - start > within:
            if left or found:
                raise AssertionError(f"cleanup: {left} ports left; kernel: {found[:10]}")
            # operations an earlier, failed test left running for good: end them here so that
            # the next fault is judged on its own operations
            warnings.warn(f"cleanup ended operations left running: {running}", stacklevel=1)
            rig.sql(
                "UPDATE operations SET state = 'failed', error = 'left by an earlier fault test' "
                "WHERE state = 'running' RETURNING id"
            )
            return
        time.sleep(0.2)
