"""Real worker processes for integration tests: a control worker and host workers in namespaces."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.db import get_sessionmaker
from app.host_identity import host_key
from app.services import tokens
from app.services.context import Ctx
from app.services.outbox import Outbox

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def wait_for(check: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """The API (in-process, real app), plus worker processes started with `virtnet` commands."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.report_secret = secrets.token_hex(16)
        with get_sessionmaker(settings.effective_database_url)() as session:
            _, secret = tokens.create(Ctx(session, Outbox(None), settings), role="admin")
        self.api = TestClient(create_app(settings), headers={"Authorization": f"Bearer {secret}"})

    def configure(self, **update: Any) -> None:
        """Other settings for what runs from now on: the in-process API (its host-down
        window, say) as well as the workers started after this."""
        self.settings = self.settings.model_copy(update=update)
        self.api = TestClient(create_app(self.settings), headers=dict(self.api.headers))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
        s = self.settings
        env.update(
            VIRTNET_DATABASE_URL=s.effective_database_url,
            VIRTNET_BROKER_URL=s.effective_broker_url,
            VIRTNET_STATE_DIR=str(s.state_dir),
            VIRTNET_HEARTBEAT_SECONDS=str(s.heartbeat_seconds),
            VIRTNET_MISSED_HEARTBEATS=str(s.missed_heartbeats),
            VIRTNET_RESYNC_SECONDS=str(s.resync_seconds),
            VIRTNET_OPERATION_DEADLINE_SECONDS=str(s.operation_deadline_seconds),
            VIRTNET_REPORT_SECRET=self.report_secret,
        )
        return env

    def _spawn(self, key: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - lives as long as the child
        self.procs[key] = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_control(self) -> None:
        self._spawn("control", ["control-worker"], self.env())

    def start_host(self, host: str, netns: str, underlay: str | None = None) -> None:
        env = self.env()
        del env["VIRTNET_DATABASE_URL"]  # host workers hold no database credentials
        del env["VIRTNET_REPORT_SECRET"]  # ... nor the secret: only their own key
        env["VIRTNET_HOST_KEY"] = host_key(self.report_secret, host)
        extra = ["--underlay", underlay] if underlay else []
        self._spawn(host, ["worker", "--host", host, "--netns", netns, *extra], env)

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(key)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def start_api(self, workers: int | None = 1) -> str:
        """The API as its own process (`virtnet api`, ``workers`` worker processes; None:
        VIRTNET_API_WORKERS left at its default)."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = self.env()
        if workers is not None:
            env["VIRTNET_API_WORKERS"] = str(workers)
        self._spawn("api", ["api", "--listen", f"127.0.0.1:{port}"], env)
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            import httpx

            try:
                return httpx.get(f"{base}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30, what=f"API process\n{self.logs()}")
        return base

    def serve_http(self) -> str:
        """The same API over real HTTP (uvicorn in a thread), for concurrent clients."""
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self._server.run, daemon=True)
        self._server_thread.start()
        wait_for(lambda: self._server.started, what="uvicorn started")
        return f"http://127.0.0.1:{port}"

    def signal(self, key: str, sig: int) -> None:
        os.killpg(self.procs[key].pid, sig)

    def close(self) -> None:
        for key in list(self.procs):
            self.kill(key, signal.SIGTERM)
        if getattr(self, "_server", None) is not None:
            self._server.should_exit = True
            self._server_thread.join(timeout=10)
            self._server = None
        self.api.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.log_dir.glob("*.log")
        )

    # -- API helpers

    def host_state(self, host: str) -> str | None:
        r = self.api.get(f"/v1/hosts/{host}")
        return r.json()["state"] if r.status_code == 200 else None

    def wait_hosts_up(self, *hosts: str, timeout: float = 30) -> None:
        for host in hosts:
            wait_for(
                lambda h=host: self.host_state(h) == "up",
                timeout=timeout,
                what=f"host {host} up\n{self.logs()}",
            )

    def network(self, name: str) -> dict[str, Any]:
        return self.api.get(f"/v1/networks/{name}").json()

    def wait_network(self, name: str, state: str = "active", timeout: float = 20) -> dict[str, Any]:
        return wait_for(
            lambda: (n := self.network(name))["status"]["state"] == state and n,
            timeout=timeout,
            what=f"network {name} {state}\n{self.logs()}",
        )
