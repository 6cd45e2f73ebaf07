"""Configuration is checked at start: a bad value stops the process with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db import get_sessionmaker
from app.services import tokens
from app.services.context import Ctx
from app.services.outbox import Outbox
from app.services.schema import upgrade_database
from tests.cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent


def virtnet(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIRTNET_DATABASE_URL", "mysql://root@localhost/x"),
        ("VIRTNET_BROKER_URL", "amqp://guest@localhost//"),
        ("VIRTNET_HEARTBEAT_SECONDS", "soon"),
        ("VIRTNET_MISSED_HEARTBEATS", "0"),
        ("VIRTNET_LISTEN", "8080"),
        ("VIRTNET_HOST_NAME", "bad host"),
    ],
)
def test_bad_setting_stops_with_one_line(variable: str, value: str) -> None:
    done = virtnet("api", **{variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"virtnet: configuration error: {variable}=")
    assert "Traceback" not in done.stderr


def test_bad_listen_flag_is_a_usage_error() -> None:
    done = virtnet("api", "--listen", "localhost")
    assert done.returncode == 2 and "HOST:PORT" in done.stderr


def test_token_create_prints_a_working_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade_database(Settings(database_url=url))
    done = virtnet("token", "create", "--role", "reader", VIRTNET_DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("vn_")
    settings = Settings(database_url=url)
    with get_sessionmaker(url)() as session:
        token = tokens.authenticate(Ctx(session, Outbox(None), settings), secret)
    assert token.role == "reader"


def test_bootstrap_token_becomes_admin_on_a_new_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    done = virtnet("db", "upgrade", VIRTNET_DATABASE_URL=url, VIRTNET_BOOTSTRAP_TOKEN="vn_boot")
    assert done.returncode == 0, done.stderr
    settings = Settings(database_url=url)
    with get_sessionmaker(url)() as session:
        assert tokens.authenticate(Ctx(session, Outbox(None), settings), "vn_boot").role == "admin"
    # a later start with another bootstrap value adds nothing: the database is not new
    virtnet("db", "upgrade", VIRTNET_DATABASE_URL=url, VIRTNET_BOOTSTRAP_TOKEN="vn_other")
    with get_sessionmaker(url)() as session:
        assert len(tokens.listing(Ctx(session, Outbox(None), settings))) == 1


def test_api_runs_several_worker_processes(cluster: Cluster) -> None:
    base = cluster.start_api(workers=2)
    replies = [httpx.get(f"{base}/v1/health", timeout=5) for _ in range(4)]
    assert {r.status_code for r in replies} == {200}
    listed = httpx.get(f"{base}/v1/networks", headers=dict(cluster.api.headers), timeout=5)
    assert listed.status_code == 200 and listed.json()["total"] == 0


def test_the_default_broker_is_a_private_redis_on_a_unix_socket(tmp_path: Path) -> None:
    from app.embedded_broker import redis_server_argv

    settings = Settings(state_dir=tmp_path)
    sock = tmp_path / "broker" / "redis.sock"
    assert settings.effective_broker_url == f"redis+socket://{sock}"
    argv = redis_server_argv(settings)
    assert argv[argv.index("--unixsocket") + 1] == str(sock)
    assert argv[argv.index("--unixsocketperm") + 1] == "600"
    assert argv[argv.index("--port") + 1] == "0"  # no TCP at all
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert Settings(state_dir=tmp_path, broker_url="redis://127.0.0.1:1/0").effective_broker_url


def test_a_state_dir_too_long_for_the_broker_socket_stops_serve(tmp_path: Path) -> None:
    r = virtnet("serve", VIRTNET_STATE_DIR=str(tmp_path / ("d" * 100)))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "VIRTNET_STATE_DIR" in r.stderr and "shorter state directory" in r.stderr
