"""Deployment files: docker-compose.yml names every service with what each needs."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


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
        assert env["VIRTNET_BROKER_URL"].startswith("redis://")
    assert (ROOT / "Dockerfile").exists()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```")
    run_block, test_block = blocks[1], blocks[3]
    assert "scripts/run" in run_block and "scripts/test" in test_block
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
