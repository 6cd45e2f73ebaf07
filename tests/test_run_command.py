"""The README's run command: the embedded default answers health and takes a definition."""

from __future__ import annotations

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
            assert (tmp_path / "virtnet.db").exists() and (tmp_path / "broker").is_dir()
            # the host worker registered through the file-system broker and the control worker
            for _ in range(100):
                hosts = httpx.get(f"{base}/v1/hosts", headers=auth).json()
                if hosts:
                    break
                time.sleep(0.2)
            assert [h["name"] for h in hosts] == ["readme-host"] and hosts[0]["state"] == "up"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
