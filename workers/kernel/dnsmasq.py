"""One dnsmasq per network on this host, supervised by the host worker.

Each network's files live in ``<state>/dnsmasq/<network uuid>/``: the config, the DHCP hosts
file, the additional hosts file, the lease file and the pid file. dnsmasq daemonises, so it
outlives a worker restart; the next worker adopts it through the pid file (checking that
the process is a dnsmasq started with that very config file) instead of starting another.

A changed config restarts dnsmasq (it cannot re-read its config); changed hosts files only
need SIGHUP, which makes dnsmasq re-read ``dhcp-hostsfile`` and ``addn-hosts``: the PID,
the leases and DNS service stay.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import KernelError

log = logging.getLogger(__name__)
T = TypeVar("T")
DNSMASQ = shutil.which("dnsmasq", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/dnsmasq"
HOSTSFILE, ADDNHOSTS = "{hostsfile}", "{addnhosts}"
STOP_WAIT = 2.0


@dataclass(frozen=True)
class DnsmasqSpec:
    key: str
    """The network's uuid: names the state folder."""
    options: list[str]
    dhcp_hosts: list[str] = field(default_factory=list)
    addn_hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lease:
    expiry: int
    mac: str | None
    ip: str
    hostname: str | None
    client_id: str | None


class Paths:
    def __init__(self, root: Path, key: str) -> None:
        self.dir = root / key
        self.conf = self.dir / "dnsmasq.conf"
        self.hosts = self.dir / "dhcp-hosts"
        self.addn = self.dir / "addn-hosts"
        self.leases = self.dir / "leases"
        self.pid = self.dir / "dnsmasq.pid"


def _text(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    # dnsmasq re-reads the hosts files after dropping root (to 'nobody') on SIGHUP
    tmp.chmod(0o644)
    tmp.replace(path)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_ours(pid: int, conf: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--conf-file={conf}".encode() in cmdline and _alive(pid)


def _exiting(pid: int) -> bool:
    # After SIGKILL a process frees its memory (its cmdline reads empty) before its files:
    # until it is gone it still holds the listening sockets its successor needs.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline == b"" and _alive(pid)


def _spawn(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # dnsmasq daemonises: this returns once its pid file is written
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


class DnsmasqSupervisor:
    """Starts, adopts, refreshes, restarts and stops the dnsmasq processes of one host.

    ``run`` calls a function in the host's network namespace: dnsmasq is started from
    there and so serves the bridges of that namespace.
    """

    def __init__(self, root: Path, run: Callable[..., Any]) -> None:
        self.root = root
        self._run = run
        self._wanted: dict[str, DnsmasqSpec] = {}
        self._lock = threading.RLock()

    def pid(self, key: str) -> int | None:
        paths = Paths(self.root, key)
        try:
            pid = int(paths.pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_ours(pid, paths.conf) else None

    def ensure(self, spec: DnsmasqSpec) -> int:
        """Make dnsmasq run with ``spec``; returns its PID."""
        with self._lock:
            self._wanted[spec.key] = spec
            paths = Paths(self.root, spec.key)
            paths.dir.mkdir(parents=True, exist_ok=True)
            paths.dir.chmod(0o755)
            hosts_changed = _write_if_changed(paths.hosts, _text(spec.dhcp_hosts))
            hosts_changed |= _write_if_changed(paths.addn, _text(spec.addn_hosts))
            conf_changed = _write_if_changed(paths.conf, self._conf(spec, paths))
            pid = self.pid(spec.key)
            if pid is not None and conf_changed:
                self._kill(pid)
                pid = None
            if pid is None:
                return self._start(paths)
            if hosts_changed:
                os.kill(pid, signal.SIGHUP)
            return pid

    def _conf(self, spec: DnsmasqSpec, paths: Paths) -> str:
        options = [
            o.replace(HOSTSFILE, str(paths.hosts)).replace(ADDNHOSTS, str(paths.addn))
            for o in spec.options
        ]
        return _text(
            [
                "## written by virtnet's host worker: changes are overwritten",
                *options,
                f"pid-file={paths.pid}",
                f"dhcp-leasefile={paths.leases}",
            ]
        )

    def _start(self, paths: Paths) -> int:
        self._await_predecessor(paths)
        paths.pid.unlink(missing_ok=True)
        argv = [DNSMASQ, f"--conf-file={paths.conf}"]
        try:
            done = self._run(_spawn, argv)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KernelError(f"starting dnsmasq ({' '.join(argv)}): {exc}", errno.EIO) from exc
        if done.returncode != 0:
            raise KernelError(
                f"dnsmasq refused to start: {done.stderr.strip() or done.returncode}", errno.EIO
            )
        pid = self.pid(paths.dir.name)
        if pid is None:
            raise KernelError(f"dnsmasq started but wrote no pid file {paths.pid}", errno.EIO)
        return pid

    @staticmethod
    def _await_predecessor(paths: Paths) -> None:
        try:
            pid = int(paths.pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        deadline = time.monotonic() + STOP_WAIT
        while _exiting(pid) and time.monotonic() < deadline:
            time.sleep(0.005)

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, key: str) -> bool:
        """Stop the network's dnsmasq and remove its files; False if none was running."""
        with self._lock:
            self._wanted.pop(key, None)
            pid = self.pid(key)
            if pid is not None:
                self._kill(pid)
            shutil.rmtree(Paths(self.root, key).dir, ignore_errors=True)
            return pid is not None

    def keys(self) -> set[str]:
        """Networks with a dnsmasq folder on this host (running or not)."""
        try:
            return {p.name for p in self.root.iterdir() if p.is_dir()}
        except FileNotFoundError:
            return set()

    def watch(self) -> list[str]:
        """Restart every wanted dnsmasq that died; returns the keys restarted.

        One that fails to start is logged and tried again next time: it must not keep the
        networks after it down."""
        restarted = []
        with self._lock:
            for key, spec in list(self._wanted.items()):
                if self.pid(key) is None:
                    try:
                        self.ensure(spec)
                    except KernelError as exc:
                        log.error("dnsmasq of network %s did not restart: %s", key, exc)
                        continue
                    restarted.append(key)
        return restarted

    def leases_stamp(self, key: str) -> float | None:
        """When the lease file last changed (None: no file yet)."""
        try:
            return Paths(self.root, key).leases.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return None

    def leases(self, key: str) -> list[Lease]:
        """The leases dnsmasq records for the network (IPv4 and IPv6)."""
        try:
            text = Paths(self.root, key).leases.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[0] == "duid":
                continue
            expiry, ident, ip, name = fields[:4]
            client = fields[4] if len(fields) > 4 else "*"
            out.append(
                Lease(
                    expiry=int(expiry),
                    mac=ident if ":" in ident else None,
                    ip=ip,
                    hostname=None if name == "*" else name,
                    client_id=None if client == "*" else client,
                )
            )
        return out
