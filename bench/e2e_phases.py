"""bench/e2e.py's phases beyond latency: reconcile of 10k ports, idle CPU, py-spy profiles.

- reconcile: ``--reconcile-ports`` ports over 10 networks (bulk API), all plugged; the host
  worker is killed (SIGKILL) and started again. Its end point is the host's applied revision
  in ``host_intents``: the registration's full bundle takes revision D+1 (D being the desired
  revision before the kill), and the worker reports it only after every port's report, so
  ``applied > D`` means the whole desired state was reconciled and reported. Then the worker
  is killed again, a tenth of the taps are deleted behind its back (``ip -batch`` in the
  namespace) and the worker started again: timed until the kernel has every tap back.
- idle: CPU time (utime+stime of each process and of its live and reaped children, from
  /proc) of the API, the control worker and the host worker over ``--idle`` seconds.
- profiles: ``py-spy record`` of each of those processes during a phase.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hostnet
from sqlalchemy import text

from app.db import get_sessionmaker
from tests.cluster import Cluster

#: from the `bench` extra (pip install -e '.[bench]'), beside this Python or on PATH
PY_SPY = Path(sys.executable).parent / "py-spy"
TICK = os.sysconf("SC_CLK_TCK")


# -- CPU time from /proc


def _stat(pid: int) -> tuple[int, list[str]]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields  # ppid, fields from state on


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, _ = _stat(int(entry))
            except (OSError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``'s tree: each live process's own, plus its reaped children's."""
    total = 0
    for p in tree(pid):
        try:
            _, f = _stat(p)
        except OSError:
            continue
        # fields from "state": utime is the 12th (stat field 14), then stime, cutime, cstime
        total += sum(int(x) for x in f[11:15])
    return total / TICK


def idle_rows(procs: dict[str, int], seconds: float) -> list[list[str]]:
    """% of one core each process tree used over ``seconds`` with nothing asked of it."""
    before = {name: cpu_seconds(pid) for name, pid in procs.items()}
    started = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    used = {name: cpu_seconds(pid) - before[name] for name, pid in procs.items()}
    rows = [
        [f"idle {seconds:.0f} s: {name}", "", "", "", "", f"{100 * s / wall:.2f} % of a core"]
        for name, s in used.items()
    ]
    total = 100 * sum(used.values()) / wall
    rows.append([f"idle {seconds:.0f} s: together", "", "", "", "", f"{total:.2f} % (< 1 %)"])
    return rows


# -- database connections


class PeakConnections:
    """The most connections to the bench's database seen at once (pg_stat_activity, every
    50 ms) while the block runs: what the pools (VIRTNET_DB_POOL_SIZE) were asked for."""

    def __init__(self, cluster: Cluster) -> None:
        self.url, self.peak = cluster.settings.effective_database_url, 0

    def __enter__(self) -> PeakConnections:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        with get_sessionmaker(self.url)() as db:
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, int(db.execute(query).scalar_one()))
                db.rollback()


# -- profiles


@contextmanager
def profiled(
    out: Path | None, phase: str, procs: dict[str, int], fmt: str, attach: float = 0.5
) -> Iterator[None]:
    """py-spy record on each process for the duration of the block (nothing if ``out`` is
    None); writes ``out/<phase>-<process>.<svg|json>``."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    ext = "json" if fmt == "speedscope" else "svg"
    spies = []
    for name, pid in procs.items():
        argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
        argv += ["--format", fmt, "--output", str(out / f"{phase}-{name}.{ext}")]
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    time.sleep(attach)  # py-spy attaches
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


# -- reconcile


def intent(cluster: Cluster, host: str) -> tuple[int, int, str | None]:
    """(desired, applied, worker_id) of the host, as the control plane has it."""
    with get_sessionmaker(cluster.settings.effective_database_url)() as db:
        row = db.execute(
            text(
                "SELECT i.desired, i.applied, h.worker_id FROM host_intents i "
                "JOIN hosts h ON h.name = i.host WHERE i.host = :h"
            ),
            {"h": host},
        ).one()
    return int(row[0]), int(row[1]), row[2]


def waiting(cluster: Cluster) -> list[Any]:
    """What still waits for a host's report (for a failure message)."""
    with get_sessionmaker(cluster.settings.effective_database_url)() as db:
        ports = db.execute(
            text("SELECT state, count(*) FROM ports WHERE state <> 'plugged' GROUP BY state")
        ).all()
        nets = db.execute(text("SELECT network_id, host, state FROM realisations")).all()
    return [list(ports), list(nets)]


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.005) -> float:
    """Poll ``check`` until true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return time.monotonic()


def tun_links(ns: str) -> list[dict[str, Any]]:
    """The tun/tap links in ``ns``, as `ip -json link` shows them (read independently)."""
    out = subprocess.run(
        ["ip", "-n", ns, "-json", "link", "show", "type", "tun"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    links: list[dict[str, Any]] = json.loads(out or "[]")
    return links


def taps(ns: str) -> set[str]:
    return {link["ifname"] for link in tun_links(ns) if link.get("master")}


def settle(ns: str) -> float:
    """Wait (up to 2 minutes) until the kernel's deferred work on new taps (linkwatch, see
    bench/hostnet.py) is done, so that it does not land in the timed restart."""
    hostnet.SETTLE_MAX_S = 120.0
    with hostnet.HostNet(ns) as net:
        return hostnet.settle(net)


class KernelWatch:
    """Reads the namespace's taps back in a loop (a thread); ``done`` is the monotonic time
    it first saw every tap of ``wanted``. Its resolution is one read of every link."""

    def __init__(self, ns: str, wanted: set[str]) -> None:
        import threading

        self.ns, self.wanted, self.done = ns, wanted, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.wanted <= taps(self.ns):
                self.done = time.monotonic()
                return

    def result(self, timeout: float) -> float:
        self._thread.join(timeout)
        self._stop.set()
        if not self.done:
            raise SystemExit(f"the deleted taps were not back within {timeout} s")
        return self.done


def _make_ports(cluster: Cluster, base: str, host: str, total: int) -> None:
    per = -(-total // 10)
    headers = dict(cluster.api.headers)
    import httpx

    with httpx.Client(headers=headers, timeout=300) as client:
        for n in range(10):
            name = f"rc{n}"
            body = {"name": name, "bridge": {"name": f"vnrc{n}", "stp": False}}
            r = client.post(f"{base}/v1/networks", json=body)
            r.raise_for_status()
            client.post(f"{base}/v1/networks/{name}/start").raise_for_status()
        for n in range(10):
            count = min(per, total - n * per)
            items = [
                {
                    "id": str(uuid.uuid4()),
                    "owner": {"name": f"rc{n}-vm{i}", "uuid": str(uuid.uuid4())},
                    "host": host,
                    "mac": hostnet.guest_mac(3_000_000 + n * 4096 + i),
                }
                for i in range(count)
            ]
            r = client.post(f"{base}/v1/networks/rc{n}/ports?wait=300", json=items)
            if r.status_code != 200 or r.json()["operation"]["state"] != "succeeded":
                raise SystemExit(f"reconcile setup failed: {r.status_code} {r.text[:500]}")


def _restart(
    cluster: Cluster, host: str, ns: str, before: int, profile: tuple[Path, str, str] | None
) -> tuple[float, float, float]:
    """Start the host worker; (spawned, registered, applied) monotonic times."""
    old_worker = intent(cluster, host)[2]
    spawned = time.monotonic()
    cluster.start_host(host, ns)
    procs = {"host": cluster.procs[host].pid, "control": cluster.procs["control"].pid}
    out, phase, fmt = profile or (None, "", "")
    with profiled(out, phase, procs, fmt, attach=0.0):
        registered = wait(lambda: intent(cluster, host)[2] != old_worker, 60, "registration")

        def caught_up() -> bool:
            # the registration's full bundle is revision before + 1: once the host reports
            # it (or a later one), every port's report is in. (Not ``applied == desired``:
            # a reconcile longer than VIRTNET_RESYNC_SECONDS gets a second full resend.)
            return intent(cluster, host)[1] > before

        try:
            applied = wait(caught_up, 120, "applied revision after the restart")
        except SystemExit:
            print(waiting(cluster), intent(cluster, host))
            raise
    return spawned, registered, applied


def reconcile_rows(
    cluster: Cluster,
    base: str,
    host: str,
    ns: str,
    total: int,
    profile: tuple[Path | None, str] = (None, ""),
) -> list[list[str]]:
    _make_ports(cluster, base, host, total)
    wait(lambda: intent(cluster, host)[0] == intent(cluster, host)[1], 60, "host settled")
    present = taps(ns)
    if len(present) < total:
        raise SystemExit(f"only {len(present)} of {total} taps in the kernel before the restart")
    settle(ns)
    rows = []
    # 1. everything already correct
    desired = intent(cluster, host)[0]
    cluster.kill(host)
    out, fmt = profile
    spawned, registered, applied = _restart(
        cluster, host, ns, desired, (out, "reconcile", fmt) if out else None
    )
    rows.append(
        [
            f"reconcile {total} correct ports: registered -> applied (2 s)",
            str(total),
            "",
            "",
            "",
            f"{applied - registered:.3f} s",
        ]
    )
    rows.append(
        [
            "  same, from the worker's spawn (process start included)",
            str(total),
            "",
            "",
            "",
            f"{applied - spawned:.3f} s",
        ]
    )
    # 2. a tenth of them deleted behind the worker's back
    missing = sorted(present)[:: max(1, len(present) // (total // 10))][: total // 10]
    desired = intent(cluster, host)[0]
    cluster.kill(host)
    script = "".join(f"link del {tap}\n" for tap in missing)
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, check=True)
    if taps(ns) & set(missing):
        raise SystemExit("the deleted taps are still there")
    settle(ns)
    watch = KernelWatch(ns, set(missing))
    spawned, registered, applied = _restart(
        cluster, host, ns, desired, (out, "reconcile-missing", fmt) if out else None
    )
    end = watch.result(60)
    rows.append(
        [
            f"reconcile with {len(missing)} taps missing: registered -> back in kernel (3 s)",
            str(len(missing)),
            "",
            "",
            "",
            f"{end - registered:.3f} s",
        ]
    )
    rows.append(
        [
            "  same, from the worker's spawn (process start included)",
            str(len(missing)),
            "",
            "",
            "",
            f"{end - spawned:.3f} s",
        ]
    )
    rows.append(
        [
            "  same, registered -> applied revision reported",
            str(len(missing)),
            "",
            "",
            "",
            f"{applied - registered:.3f} s",
        ]
    )
    if len(taps(ns)) < total:
        raise SystemExit(f"after the reconcile only {len(taps(ns))} of {total} taps")
    return rows
