"""Outages are reported: with the database down the API answers 503 + Retry-After in
problem+json and changes nothing; it recovers when the database is back; with the broker down
a committed change still answers 2xx and is stored.

The test owns its PostgreSQL (initdb + pg_ctl on a free port) and its redis-server, so it may
stop and kill them; the shared servers are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.api.main import create_app
from app.config import Settings
from app.db import get_engine, get_sessionmaker
from app.models import Network, Port
from app.services import operations, retry, tokens
from app.services.context import Ctx
from app.services.outbox import Outbox
from app.services.schema import upgrade_database
from tests.api.test_ports_api import add_host
from tests.cluster import wait_for
from tests.services import PostgresServer, RedisServer, free_port, postgres_bin

OWNER = {"name": "vm", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[tuple[PostgresServer, RedisServer]]:
    if postgres_bin() is None:
        pytest.skip("needs PostgreSQL server binaries")
    pg = PostgresServer()
    redis = RedisServer(tmp_path / "redis")
    try:
        pg.init()
        redis.start()
        yield pg, redis
    finally:
        redis.kill()
        get_engine(pg.url).dispose()
        pg.destroy()


@pytest.fixture
def api(own_servers: tuple[PostgresServer, RedisServer], tmp_path: Path) -> Iterator[TestClient]:
    pg, redis = own_servers
    # hosts stay "up" for the whole test without a worker sending heartbeats
    settings = Settings(
        database_url=pg.url, broker_url=redis.url, state_dir=tmp_path, heartbeat_seconds=600
    )
    upgrade_database(settings)
    with get_sessionmaker(settings.effective_database_url)() as session:
        _, secret = tokens.create(Ctx(session, Outbox(None), settings), role="admin")
    add_host(settings, "hostA")
    client = TestClient(
        create_app(settings),
        headers={"Authorization": f"Bearer {secret}"},
        raise_server_exceptions=False,  # a 500 must show as a status, not as an exception
    )
    assert client.post("/v1/networks?start=true", json={"name": "n"}).status_code == 201
    yield client
    client.close()


def unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503 and "database" in body["detail"], body
    return body


def count(settings_url: str, model: Any) -> int:
    with get_sessionmaker(settings_url)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_database_down_is_503_then_recovers(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer]
) -> None:
    pg, _ = own_servers
    first = api.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert first.status_code == 202, first.text
    pg.stop("immediate")
    unavailable(api.get("/v1/networks"))
    unavailable(api.post("/v1/networks", json={"name": "during"}))
    unavailable(api.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"}))
    unavailable(api.delete("/v1/networks/n"))
    health = api.get("/v1/health")
    assert health.status_code == 503 and health.json()["database"] == "unreachable"
    assert int(health.headers["retry-after"]) > 0

    pg.start()
    assert api.get("/v1/health").json()["database"] == "ok"
    created = api.post("/v1/networks", json={"name": "after"})
    assert created.status_code == 201, created.text
    names = [n["name"] for n in api.get("/v1/networks").json()["items"]]
    assert names == ["after", "n"]  # nothing of what was refused during the outage
    assert count(pg.url, Port) == 1


def test_broker_down_a_committed_change_still_answers_2xx(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer]
) -> None:
    pg, redis = own_servers
    redis.kill()
    health = api.get("/v1/health")
    assert health.status_code == 200 and health.json()["broker"] == "unreachable"
    assert health.json()["status"] == "degraded"
    r = api.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"})
    assert r.status_code in (201, 202), r.text
    assert r.json()["state"] == "plugging", r.text  # the port as stored: the nudge is best-effort
    assert count(pg.url, Port) == 1
    r = api.post("/v1/networks", json={"name": "m"})
    assert r.status_code == 201, r.text
    assert count(pg.url, Network) == 2


def test_a_failure_after_the_commit_is_not_a_5xx(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer], monkeypatch: Any
) -> None:
    """The database drops between the commit and reading back the view: the network is
    defined, so the answer says so (202), not 500."""
    from sqlalchemy.exc import OperationalError

    from app.api.routes import networks as routes

    def dropped(*_: Any, **__: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(routes, "_body", dropped)
    r = api.post("/v1/networks", json={"name": "kept"})
    assert r.status_code == 202 and r.json()["status"] == "committed", r.text
    assert count(own_servers[0].url, Network) == 2


def test_under_load_no_answer_hides_a_commit(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer], tmp_path: Path
) -> None:
    """Eight clients define networks while PostgreSQL stops (immediate) and starts again:
    every answer is a 2xx whose network exists, a 503 "nothing was changed" whose network
    does not, or a 503 that says it cannot tell; never a 500."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import uvicorn

    pg, _ = own_servers
    app = api.app
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    auth = {"Authorization": api.headers["Authorization"]}
    stop = threading.Event()

    def client(k: int) -> list[tuple[str, httpx.Response]]:
        got = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=60) as c:
            i = 0
            while not stop.is_set():
                name = f"load{k}-{i}"
                got.append((name, c.post("/v1/networks", json={"name": name})))
                i += 1
        return got

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client, k) for k in range(8)]
            time.sleep(1)
            pg.stop("immediate")
            time.sleep(3)
            pg.start()
            time.sleep(2)
            stop.set()
            answers = [a for f in futures for a in f.result()]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with get_sessionmaker(pg.url)() as session:
        stored = set(session.scalars(select(Network.name)))
    codes: dict[int, int] = {}
    for name, r in answers:
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        assert r.status_code in (201, 202, 503), (name, r.status_code, r.text)
        if r.status_code in (201, 202):
            assert name in stored, (name, r.text)
        elif "nothing was changed" in r.json()["detail"]:
            assert name not in stored, (name, r.text)
            assert int(r.headers["retry-after"]) > 0
    assert codes.get(201, 0) > 0 and codes.get(503, 0) > 0, codes


def test_database_lost_during_wait_still_answers_the_committed_port(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer]
) -> None:
    """?wait polls the operation after the commit; PostgreSQL stops meanwhile: the answer is
    the port as committed (202, still plugging), not a 5xx."""
    from concurrent.futures import ThreadPoolExecutor

    pg, _ = own_servers
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            api.post, "/v1/networks/n/ports?wait=10", json={"owner": OWNER, "host": "hostA"}
        )
        time.sleep(1)  # no worker plugs it: the request is polling
        pg.stop("immediate")
        r = waiting.result()
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "plugging" and r.headers["location"].endswith(r.json()["id"])
    pg.start()
    assert count(pg.url, Port) == 1


def test_an_open_event_stream_outlives_a_database_outage(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer]
) -> None:
    """The stream says it is waiting and resumes: it does not break, and the event made once
    the database is back still arrives."""
    import threading

    pg, _ = own_servers

    def outage() -> None:
        time.sleep(0.5)
        pg.stop("immediate")
        time.sleep(2)
        pg.start()
        assert api.post("/v1/networks", json={"name": "back"}).status_code == 201

    with api.stream("GET", "/v1/events?limit=1") as response:
        assert response.status_code == 200
        thread = threading.Thread(target=outage)
        thread.start()
        text = "".join(response.iter_text())
        thread.join()
    assert "does not answer" in text and "event: network.defined" in text, text
    assert '"back"' in text or "network/back" in text, text


def test_a_connection_lost_during_the_commit_says_it_cannot_tell(
    api: TestClient, own_servers: tuple[PostgresServer, RedisServer]
) -> None:
    """Whether a commit whose connection broke happened, the API cannot know: a 503 that
    says so (the client must look before repeating), not "nothing was changed"."""
    import psycopg
    from sqlalchemy import event

    pg = own_servers[0]
    engine = get_engine(pg.url)

    def lost(conn: Any) -> None:  # the server ends this backend just before its COMMIT
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(engine, "commit", lost)
    try:
        r = api.post("/v1/networks", json={"name": "doubt"})
    finally:
        event.remove(engine, "commit", lost)
    assert r.status_code == 503 and "may or may not" in r.json()["detail"], r.text
    assert int(r.headers["retry-after"]) > 0
    assert api.get("/v1/networks/n").status_code == 200


@pytest.mark.parametrize("ping_after_idle", [3600.0, 0.0], ids=["retried", "pinged"])
def test_a_restart_between_requests_costs_no_request_an_error(
    api: TestClient,
    own_servers: tuple[PostgresServer, RedisServer],
    monkeypatch: pytest.MonkeyPatch,
    ping_after_idle: float,
) -> None:
    """Pooled connections are pinged only after a second unused (app.db): after a restart
    nobody saw, a connection in steady use fails on its first statement, and the request
    runs again on a fresh one ("retried"); one idle for longer is pinged and replaced before
    use ("pinged"). Nothing answers 503 and nothing is done twice; a ``?wait`` whose read
    meets a dead connection reads again too, and so does a worker's transaction."""
    monkeypatch.setattr("app.db.PING_AFTER_IDLE_SECONDS", ping_after_idle)
    pg, _ = own_servers
    port = api.post("/v1/networks/n/ports", json={"owner": OWNER, "host": "hostA"}).json()
    op_id = port["operation_id"]  # no worker plugs it: it stays running
    assert api.get(f"/v1/operations/{op_id}").status_code == 200  # the pools are warm
    pg.stop("fast")
    pg.start()
    r = api.get(f"/v1/operations/{op_id}?wait=0.3")
    assert r.status_code == 200 and r.json()["state"] == "running", r.text
    pg.stop("fast")
    pg.start()
    # the waiter's own read is the first to meet a dead connection
    settings = Settings(database_url=pg.url)
    with get_sessionmaker(pg.url)() as session:
        waited = operations.wait(Ctx(session, Outbox(None), settings), op_id, 0.3)
    assert waited.state == "running"
    pg.stop("fast")
    pg.start()
    # and a worker's transaction (retry.run: the control worker's reports, heartbeats)
    with get_sessionmaker(pg.url)() as session:
        ctx = Ctx(session, Outbox(None), settings)
        ports = retry.run(ctx, lambda c: c.db.scalar(select(func.count(Port.id))))
    assert ports == 1
    pg.stop("fast")
    pg.start()
    made = api.post("/v1/networks", json={"name": "after"})
    assert made.status_code == 201, made.text
    names = [n["name"] for n in api.get("/v1/networks").json()["items"]]
    assert names == ["after", "n"]
