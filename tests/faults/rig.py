"""The fault suite's own world: a redis-server and a PostgreSQL it may kill, the API, the control
worker and one host worker as real processes, and a macTableManager='libvirt' network.

Everything is started once per module and repaired between tests (a process a test killed is
started again), so each fault costs its own load and not a whole new cluster.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.config import Settings
from app.services.schema import upgrade_database
from tests import netns
from tests.cluster import Cluster
from tests.services import PostgresServer, RedisServer, free_port

HOST = "h1"
NETWORK = "flt"
BRIDGE = "vnflt0"
#: short loops so that faults heal in seconds: heartbeats, the periodic full resend, the
#: deadline after which an operation on a host that stays down ends. A host is down only
#: after 10 s of silence: longer than any fault here lasts, so that no fault heals through a
#: host going down and up again (that resends everything and would hide a lost message)
HEARTBEAT_SECONDS = 0.5
MISSED_HEARTBEATS = 20
RESYNC_SECONDS = 1
OPERATION_DEADLINE_SECONDS = 20

Wanted = Callable[[dict[str, Any]], bool]


def decode(message: dict[str, Any]) -> dict[str, Any]:
    """A Celery message as kombu stores it in Redis: its task name and [args, kwargs, embed]."""
    body = json.loads(base64.b64decode(message["body"]))
    return {"task": message["headers"]["task"], "body": body}


class FaultCluster(Cluster):
    """tests.cluster.Cluster with the API as a child process on a port that survives restarts."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        super().__init__(settings, log_dir)
        self.api_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.headers = {"Authorization": self.api.headers["Authorization"]}

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            VIRTNET_RESYNC_SECONDS=str(RESYNC_SECONDS),
            VIRTNET_OPERATION_DEADLINE_SECONDS=str(OPERATION_DEADLINE_SECONDS),
        )
        return env

    def start_api_process(self) -> None:
        self._spawn("api", ["api", "--listen", f"127.0.0.1:{self.api_port}"], self.env())

    def api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.base}/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self, key: str) -> bool:
        proc = self.procs.get(key)
        return proc is not None and proc.poll() is None


class Rig:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis")
        self.pg = PostgresServer()
        self.ns = ""
        self.cluster: FaultCluster | None = None

    @property
    def c(self) -> FaultCluster:
        assert self.cluster is not None
        return self.cluster

    # -- start, repair, stop

    def start(self) -> None:
        self.redis.start()
        self.pg.init()
        settings = Settings(
            database_url=self.pg.url,
            broker_url=self.redis.url,
            state_dir=self.workdir / "state",
            heartbeat_seconds=HEARTBEAT_SECONDS,
            missed_heartbeats=MISSED_HEARTBEATS,
        )
        upgrade_database(settings)
        logs = self.workdir / "logs"
        logs.mkdir()
        self.cluster = FaultCluster(settings, logs)
        self.ns = netns.create("flt")
        self.c.start_control()
        self.c.start_host(HOST, self.ns)
        self.c.start_api_process()
        self.wait(self.c.api_answers, 30, "the API process")
        self.wait(lambda: self.host_state() == "up", 30, f"host {HOST} up")
        bridge = {"name": BRIDGE, "stp": False, "mac_table_manager": "libvirt"}
        r = self.http("POST", "/v1/networks", json={"name": NETWORK, "bridge": bridge})
        assert r.status_code == 201, r.text
        r = self.http("POST", f"/v1/networks/{NETWORK}/start")
        assert r.status_code == 200, r.text
        self.wait(self.network_active, 30, f"network {NETWORK} active")

    def repair(self) -> None:
        """Whatever the last test killed or stopped runs again."""
        if not self.redis.ping():
            self.redis.kill()
            self.redis.start()
        if not self.pg.running():
            self.pg.start()
        for key in ("control", HOST, "api"):
            if key in self.c.procs and self.c.alive(key):
                self.c.signal(key, signal.SIGCONT)
                continue
            if key in self.c.procs:
                self.c.kill(key)
            self.restart(key)
        self.wait(self.c.api_answers, 30, "the API process")
        try:
            self.wait(lambda: self.host_state() == "up", 10, f"host {HOST} up")
        except AssertionError:
            # a worker the last test left alive but unable to work: start both afresh
            for key in ("control", HOST):
                self.c.kill(key)
                self.restart(key)
            self.wait(lambda: self.host_state() == "up", 30, f"host {HOST} up")

    def restart(self, key: str) -> None:
        if key == "control":
            self.c.start_control()
        elif key == "api":
            self.c.start_api_process()
        else:
            self.c.start_host(key, self.ns)

    def stop(self) -> None:
        if self.cluster is not None:
            for key in list(self.c.procs):
                with contextlib.suppress(ProcessLookupError):
                    self.c.signal(key, signal.SIGCONT)
            self.c.close()
        if self.ns:
            netns.delete(self.ns)
        self.redis.kill()
        self.pg.destroy()

    def logs(self) -> str:
        text = self.c.logs() if self.cluster is not None else ""
        return f"{text}\n--- redis\n{self.redis.log()}\n--- postgres\n{self.pg.log()}"

    def wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.1)

    # -- reading the world

    def http(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.c.base}{path}", headers=self.c.headers, timeout=30, **kwargs
        )

    def host_state(self) -> str | None:
        try:
            r = self.http("GET", f"/v1/hosts/{HOST}")
        except httpx.HTTPError:
            return None
        return r.json().get("state") if r.status_code == 200 else None

    def network_active(self) -> bool:
        try:
            r = self.http("GET", f"/v1/networks/{NETWORK}")
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json()["status"]["state"] == "active"

    def sql(self, query: str, *params: Any) -> list[dict[str, Any]]:
        """A fresh connection each time: the server may have been restarted in between."""
        dsn = self.pg.url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn, connect_timeout=5, row_factory=psycopg.rows.dict_row) as conn:
            return list(conn.execute(query, params).fetchall())

    # -- messages on the broker

    def queued(self, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
        """The raw messages waiting in ``queue`` (a Redis list), decoded next to each."""
        client = self.redis.client()
        try:
            raw = client.lrange(queue, 0, -1)
        finally:
            client.close()
        return [(item, decode(json.loads(item))) for item in raw]

    def kill_holding(self, key: str, unacked: str, wanted: Wanted, timeout: float = 10) -> Any:
        """SIGKILL worker ``key`` while it holds a ``wanted`` message it took and has not
        acknowledged (kombu keeps those in the hash ``unacked``): stopped the moment one shows
        there, killed if it still holds it; the message it took along."""
        client = self.redis.client()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for tag, raw in client.hgetall(unacked).items():
                    message = decode(json.loads(raw)[0])
                    if not wanted(message):
                        continue
                    self.c.signal(key, signal.SIGSTOP)
                    if client.hexists(unacked, tag):
                        self.c.kill(key, signal.SIGKILL)
                        return message
                    self.c.signal(key, signal.SIGCONT)  # done with it already: the next one
                time.sleep(0.001)
        finally:
            client.close()
        raise AssertionError(f"{key} took no wanted message within {timeout} s")

    def drop(
        self, queue: str, wanted: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> Any:
        """Delete the newest message of ``queue`` that is ``wanted`` once one is there; what
        it held (``{"task": name, "body": [args, kwargs, embed]}``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for raw, message in self.queued(queue):
                if wanted(message):
                    client = self.redis.client()
                    try:
                        if client.lrem(queue, 1, raw) == 1:
                            return message
                    finally:
                        client.close()
            time.sleep(0.02)
        raise AssertionError(f"no wanted message reached {queue} within {timeout} s")
