from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.services.schema import upgrade_database
from tests import netns, services
from tests.cluster import Cluster


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url, name = services.create_pg_database()
    upgrade_database(Settings(database_url=url))
    yield url
    services.drop_pg_database(url, name)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'virtnet.db'}"
    upgrade_database(Settings(database_url=url))
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.redis_test_url()


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """The real API (in-process, and over HTTP on demand) and worker processes it starts."""
    c = Cluster(settings, tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def two_hosts(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Two simulated hosts, each a namespace with a host worker, and the control worker."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    with netns.namespace("h1") as ns1, netns.namespace("h2") as ns2:
        hosts = {"h1": ns1, "h2": ns2}
        cluster.start_control()
        for host, ns in hosts.items():
            cluster.start_host(host, ns)
        cluster.wait_hosts_up(*hosts)
        yield hosts
        cluster.close()  # workers stop before their namespaces go


@pytest.fixture
def settings(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    services.empty_tables(pg_url)
    services.empty_redis(redis_url)
    yield Settings(
        database_url=pg_url,
        broker_url=redis_url,
        state_dir=tmp_path,
        heartbeat_seconds=0.5,
        missed_heartbeats=4,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start building the fresh-install venv early if a selected test needs it."""
    if any("fresh_venv" in getattr(item, "fixturenames", ()) for item in items):
        from tests.deploy import fresh_venv

        fresh_venv.start()
