"""The README's run command: the embedded default answers health and takes a definition."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests import netns

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _killed_children_come_back(base: str) -> None:
    """SIGKILL the broker and the control worker: serve restarts both and health says so."""
    auth = {"Authorization": "Bearer vn_readme-test"}
    components = httpx.get(f"{base}/v1/health").json()["components"]
    assert {"api", "broker", "control-worker", "host-worker"} <= set(components)
    for name in ("broker", "control-worker"):
        os.kill(components[name]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(f"{base}/v1/health").json()
        now = health["components"]
        if health["status"] == "ok" and all(
            now[n]["restarts"] == 1 for n in ("broker", "control-worker")
        ):
            break
        assert time.monotonic() < deadline, f"not restarted within 60 s: {health}"
        time.sleep(0.3)
    for name in ("broker", "control-worker"):
        assert (
            now[name]["last_exit"] == -signal.SIGKILL
            and now[name]["pid"] != components[name]["pid"]
        )
    assert "url" not in str(health).lower() and "vn_" not in str(health)
    # the restarted pair works: a network started now is realised on the host
    r = httpx.post(f"{base}/v1/networks/readme/start?wait=30", headers=auth, timeout=40)
    assert r.status_code == 200, r.text


@pytest.mark.skipif(not netns.can_create_namespaces(), reason="needs root and ip netns")
def test_run_command_serves_the_embedded_default(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
    with netns.namespace("run") as ns:
        env.update(
            VIRTNET_STATE_DIR=str(tmp_path),
            VIRTNET_BOOTSTRAP_TOKEN="vn_readme-test",
            VIRTNET_HOST_NAME="readme-host",
            VIRTNET_NETNS=ns,
        )
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run"), "--listen", f"127.0.0.1:{port}"],
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                try:
                    if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the service did not answer within 120 s"
                time.sleep(0.3)
            auth = {"Authorization": "Bearer vn_readme-test"}
            r = httpx.post(f"{base}/v1/networks", json={"name": "readme"}, headers=auth)
            assert r.status_code == 201, r.text
            assert r.json()["bridge"]["name"] == "virbr0"
            assert (tmp_path / "virtnet.db").exists()
            assert (tmp_path / "broker" / "redis.sock").is_socket()
            # the host worker registered through the embedded broker and the control worker
            for _ in range(100):
                hosts = httpx.get(f"{base}/v1/hosts", headers=auth).json()
                if hosts:
                    break
                time.sleep(0.2)
            assert [h["name"] for h in hosts] == ["readme-host"] and hosts[0]["state"] == "up"
            _killed_children_come_back(base)
            tree = _tree(proc.pid)
            assert len(tree) >= 4, tree  # serve, broker, control worker, host worker
            os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while (alive := [p for p in tree if _alive(p)]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not alive, f"still running 10 s after SIGTERM: {alive}"
            assert proc.wait(timeout=1) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
