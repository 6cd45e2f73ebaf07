"""Deployment files: docker-compose.yml names every service with what each needs."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


def test_compose_file_names_every_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "api", "control-worker", "host-worker"}
    host = services["host-worker"]
    assert host["network_mode"] == "host" and "NET_ADMIN" in host["cap_add"]
    assert "VIRTNET_DATABASE_URL" not in host.get("environment", {}), "hosts get no DB access"
    assert services["api"]["command"][0] == "api"
    assert services["control-worker"]["command"] == ["control-worker"]
    for name in ("api", "control-worker"):
        env = services[name]["environment"]
        assert env["VIRTNET_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert (ROOT / "Dockerfile").exists()


def test_compose_redis_persists_and_authenticates_every_client() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    redis = services["redis"]
    assert redis["entrypoint"] == ["sh", "/etc/virtnet/redis/start.sh"]
    assert "./deploy/redis:/etc/virtnet/redis:ro" in redis["volumes"]
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the AOF lives on a volume"
    start = (ROOT / "deploy/redis/start.sh").read_text()
    assert "--appendonly yes" in start and "user default off" in start
    users = {"api": "api", "control-worker": "control", "host-worker": "host-"}
    for service, user in users.items():
        url = services[service]["environment"]["VIRTNET_BROKER_URL"]
        assert url.startswith(f"redis://{user}"), (service, url)
    host_env = services["host-worker"]["environment"]
    assert "VIRTNET_HOST_KEY" in host_env and "VIRTNET_REPORT_SECRET" not in host_env
    assert "VIRTNET_REPORT_SECRET" in services["control-worker"]["environment"]
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "rediss://" in docs and "scrape_configs" in docs


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```")
    run_block, test_block = blocks[1], blocks[3]
    assert "scripts/run" in run_block and "scripts/test" in test_block
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
