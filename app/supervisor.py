"""`virtnet serve`'s children: started, restarted with backoff when they die, stopped in order.

Each child runs in its own session, so a Ctrl-C on the terminal reaches only `serve`, which
then stops the children itself (workers first, the broker last, so the workers can still
acknowledge). Each child also gets SIGTERM from the kernel if the thread that started it ends
(PR_SET_PDEATHSIG), so even a SIGKILL of `serve` leaves no orphan behind. That is why every
child is started, and stopped, by the supervisor's one thread.

The state of every child goes to a small JSON file in the state directory, so that
`/v1/health` can show it from any API worker process.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("virtnet.serve")

STATUS_FILE = "serve.json"
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
#: a child that ran this long before dying starts again after FIRST_BACKOFF
STABLE_SECONDS = 60.0
#: how soon a dead child is noticed; each look costs a wake-up of `serve` at idle
POLL_SECONDS = 1.0
WORKER_STOP_SECONDS, BROKER_STOP_SECONDS = 5.0, 2.5
_PR_SET_PDEATHSIG = 1


_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:  # in a child: between fork and exec, or first thing
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def freeze_startup_objects() -> None:
    """Put what the process holds once started (modules, the app, the ORM's mappers, Celery)
    out of the cyclic garbage collector's reach: left in, every full collection walks all of
    it, a pause of 40-75 ms every few seconds under load in an API worker (the p99 of a
    plug). What is garbage already goes first."""
    gc.collect()
    gc.freeze()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Child:
    name: str
    argv: list[str]
    #: the broker is stopped last; workers first
    last_to_stop: bool = False
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"
    restarts: int = 0
    since: str = field(default_factory=_now)
    last_exit: int | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = FIRST_BACKOFF

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.proc.pid if self.proc and self.state == "running" else None,
            "restarts": self.restarts,
            "since": self.since,
            "last_exit": self.last_exit,
        }


class Supervisor:
    def __init__(self, children: list[Child], state_dir: Path) -> None:
        self.children = children
        self.status_path = state_dir / STATUS_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def begin_stop(self) -> None:
        """Start stopping the children (from a signal handler: it only sets a flag)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                changed = False
                for child in self.children:
                    changed |= self._check(child)
                if changed:
                    self._write_status()
                self._stop.wait(POLL_SECONDS)
        finally:
            self._stop_all()

    def _check(self, child: Child) -> bool:
        now = time.monotonic()
        if child.proc is None:
            if now < child.next_start:
                return False
            self._spawn(child)
            return True
        code = child.proc.poll()
        if code is None:
            return False
        if now - child.started_at >= STABLE_SECONDS:
            child.backoff = FIRST_BACKOFF
        child.proc, child.last_exit, child.state, child.since = None, code, "restarting", _now()
        child.next_start = now + child.backoff
        log.error(
            "%s exited with %s; restarting it in %.0f s", child.name, _describe(code), child.backoff
        )
        child.backoff = min(child.backoff * 2, MAX_BACKOFF)
        return True

    def _spawn(self, child: Child) -> None:
        out: Any = subprocess.DEVNULL
        if child.log_path is not None:
            out = open(child.log_path, "ab")  # noqa: SIM115 - the child keeps it, we close ours
        try:
            child.proc = subprocess.Popen(
                child.argv,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
                stdout=out if child.log_path else None,
                stderr=subprocess.STDOUT if child.log_path else None,
            )
        except OSError as exc:
            log.error("cannot start %s: %s", child.name, exc)
            child.next_start = time.monotonic() + child.backoff
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            return
        finally:
            if child.log_path is not None:
                out.close()
        if child.started_at:
            child.restarts += 1
            log.warning(
                "%s restarted (pid %d, restart %d)", child.name, child.proc.pid, child.restarts
            )
        child.started_at = time.monotonic()
        child.state, child.since = "running", _now()

    def _stop_all(self) -> None:
        for last, grace in ((False, WORKER_STOP_SECONDS), (True, BROKER_STOP_SECONDS)):
            group = [c for c in self.children if c.last_to_stop == last and c.proc is not None]
            for child in group:
                _signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for child in group:
                assert child.proc is not None
                try:
                    child.proc.wait(max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.error("%s did not stop within %.0f s; killing it", child.name, grace)
                _signal_group(child, signal.SIGKILL)  # whatever it left in its session goes too
                child.proc.wait()
                child.state, child.since = "stopped", _now()

    def _write_status(self) -> None:
        status = {"pid": os.getpid(), "components": {c.name: c.view() for c in self.children}}
        tmp = self.status_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(status))
            tmp.replace(self.status_path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.status_path, exc)


def _signal_group(child: Child, sig: int) -> None:
    assert child.proc is not None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """What the running `serve` last wrote, or None if no `serve` runs for this state dir."""
    try:
        status = json.loads((state_dir / STATUS_FILE).read_text())
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return status if isinstance(status.get("components"), dict) else None
