"""A plain `pip install .` runs both workers against a Redis that authenticates every client,
with the ACL users of deploy/redis/start.sh, and the control worker believes no forged host."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from app.celery_app import HEARTBEAT, HEARTBEAT_QUEUE, make_celery, task_sender
from app.config import Settings
from app.host_identity import host_key, sign
from tests import netns
from tests.cluster import wait_for
from tests.deploy.fresh_venv import ROOT, wait

PASSWORDS = {"api": "api-" + secrets.token_hex(8), "control": "ctl-" + secrets.token_hex(8)}
HOSTS = {"t1": "t1-" + secrets.token_hex(8), "t2": "t2-" + secrets.token_hex(8)}


@pytest.fixture(scope="module")
def fresh_venv() -> Path:
    return wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server started the way docker-compose starts it (deploy/redis/start.sh)."""
    port = _free_port()
    env = {
        **os.environ,
        "VIRTNET_REDIS_DIR": str(tmp_path / "redis"),
        "VIRTNET_REDIS_API_PASSWORD": PASSWORDS["api"],
        "VIRTNET_REDIS_CONTROL_PASSWORD": PASSWORDS["control"],
        "VIRTNET_REDIS_HOSTS": " ".join(f"{h}:{p}" for h, p in HOSTS.items()),
    }
    log = open(tmp_path / "redis.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["sh", str(ROOT / "deploy/redis/start.sh"), "--port", str(port), "--bind", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=1).ping())
        except redis.AuthenticationError:
            return True  # up, and refusing the anonymous default user
        except redis.RedisError:
            return False

    try:
        wait_for(answers, timeout=20, what="redis-server from deploy/redis/start.sh")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _url(user: str, password: str, port: int) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port}/0"


def test_acl_users_touch_only_their_own_queues(acl_redis: int) -> None:
    port = acl_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).lpush("host.t1", "anonymous")
    t1 = redis.Redis.from_url(_url("host-t1", HOSTS["t1"], port))
    t1.lpush("control", "report")  # writes the control queues...
    for forbidden in (
        lambda: t1.lrange("control", 0, -1),  # ...but never reads them
        lambda: t1.rpop("control.heartbeat"),
        lambda: t1.lpush("host.t2", "task"),  # nor another host's queue
        lambda: t1.rpop("host.t2"),
        lambda: t1.hgetall("unacked"),
        lambda: t1.flushdb(),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    assert t1.rpop("host.t1") is None  # its own queue it reads
    api = redis.Redis.from_url(_url("api", PASSWORDS["api"], port))
    api.lpush("host.t2", "task")
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.hgetall("unacked")


def test_plain_install_runs_both_workers_on_authenticated_redis(
    fresh_venv: Path, acl_redis: int, tmp_path: Path
) -> None:
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    port, secret = acl_redis, secrets.token_hex(16)
    db = f"sqlite:///{tmp_path / 'virtnet.db'}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
    base.update(VIRTNET_STATE_DIR=str(tmp_path), VIRTNET_HEARTBEAT_SECONDS="0.5")
    virtnet = str(fresh_venv / "bin" / "virtnet")
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [virtnet, *args],
                env={**base, **env},
                cwd=tmp_path,  # not the source tree: the installed package runs
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))

    engine = create_engine(db)

    def hosts() -> set[str]:
        try:
            with engine.connect() as conn:
                return {row[0] for row in conn.execute(text("SELECT name FROM hosts"))}
        except Exception:
            return set()

    with netns.namespace("inst") as ns:
        try:
            control_url = _url("control", PASSWORDS["control"], port)
            spawn(
                "control",
                ["control-worker"],
                {
                    "VIRTNET_DATABASE_URL": db,
                    "VIRTNET_BROKER_URL": control_url,
                    "VIRTNET_REPORT_SECRET": secret,
                },
            )
            spawn(
                "t1",
                ["worker", "--host", "t1", "--netns", ns],
                {
                    "VIRTNET_BROKER_URL": _url("host-t1", HOSTS["t1"], port),
                    "VIRTNET_HOST_KEY": host_key(secret, "t1"),
                },
            )
            wait_for(lambda: "t1" in hosts(), timeout=60, what=f"host t1 registered\n{logs()}")

            # t1's own broker user, t1's own key, but claiming to be t2: refused
            forger = make_celery(
                Settings(broker_url=_url("host-t1", HOSTS["t1"], port), state_dir=tmp_path)
            )
            send = task_sender(forger, declare=False)
            beat = {"host": "t2", "worker_id": "x", "capabilities": {}, "registering": True}
            send(HEARTBEAT, sign(host_key(secret, "t1"), HEARTBEAT, beat), HEARTBEAT_QUEUE)
            send(HEARTBEAT, beat, HEARTBEAT_QUEUE)  # unsigned: refused too
            control = redis.Redis.from_url(control_url)
            wait_for(lambda: control.llen(HEARTBEAT_QUEUE) == 0, what="forged beats consumed")
            time.sleep(1.0)  # several of t1's own beats go by meanwhile
            assert hosts() == {"t1"}, logs()
            assert "refused virtnet.control.heartbeat claiming host 't2'" in logs()
            for proc in procs:
                assert proc.poll() is None, logs()
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=20)
            engine.dispose()
