"""Bearer tokens and roles; health is open; the OpenAPI document describes the API."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.main import create_app
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Token
from tests.api.conftest import assert_problem


def test_health_needs_no_token(anon: TestClient) -> None:
    r = anon.get("/v1/health")
    assert r.status_code == 200
    # no `virtnet serve` runs for this state dir: no components, and nothing secret
    assert r.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_says_what_is_unreachable(tmp_path: Path) -> None:
    broken = Settings(
        database_url=f"sqlite:///{tmp_path}/missing/dir/virtnet.db",
        broker_url=f"redis+socket://{tmp_path}/no.sock",
        state_dir=tmp_path,
    )
    r = TestClient(create_app(broken)).get("/v1/health")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.json() == {"status": "unavailable", "database": "unreachable", "broker": "unreachable"}
    assert str(tmp_path) not in r.text


def test_missing_or_unknown_token_is_401(anon: TestClient) -> None:
    r = anon.get("/v1/networks")
    assert_problem(r, 401, says="Authorization: Bearer")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(anon.get("/v1/networks", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(
        anon.get("/v1/networks", headers={"Authorization": "Bearer vn_nope"}), 401, says="not known"
    )


def test_reader_reads_operator_changes_admin_manages_tokens(
    reader: TestClient, client: TestClient, admin: TestClient
) -> None:
    assert reader.get("/v1/networks").status_code == 200
    assert_problem(reader.post("/v1/networks", json={"name": "n"}), 403, says="operator")
    assert client.get("/v1/networks").json()["total"] == 0
    assert client.post("/v1/networks", json={"name": "n"}).status_code == 201
    assert_problem(reader.post("/v1/networks/n/start"), 403)
    assert_problem(client.post("/v1/tokens", json={"role": "reader"}), 403, says="admin")
    made = admin.post("/v1/tokens", json={"role": "reader", "name": "ci"})
    assert made.status_code == 201 and made.json()["token"].startswith("vn_")
    fresh = TestClient(admin.app, headers={"Authorization": f"Bearer {made.json()['token']}"})
    assert fresh.get("/v1/networks/n").status_code == 200
    assert_problem(fresh.delete("/v1/networks/n"), 403)
    assert_problem(admin.post("/v1/tokens", json={"role": "root"}), 422, "role")
    token_id = made.json()["id"]
    assert admin.delete(f"/v1/tokens/{token_id}").status_code == 204
    assert_problem(fresh.get("/v1/networks"), 401)
    assert_problem(admin.delete(f"/v1/tokens/{token_id}"), 404)


def test_tokens_are_stored_hashed(admin: TestClient, api_settings: Settings) -> None:
    secret = admin.post("/v1/tokens", json={"role": "operator"}).json()["token"]
    with get_sessionmaker(api_settings.effective_database_url)() as session:
        stored = session.scalars(select(Token.token_hash)).all()
    assert secret not in stored and all(len(h) == 64 for h in stored)
    listed = admin.get("/v1/tokens").json()
    assert all("token" not in t and "token_hash" not in t for t in listed)


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.patch("/v1/networks/x"), 405)


def test_openapi_describes_every_route(anon: TestClient) -> None:
    doc = anon.get("/openapi.json").json()
    for path in [
        "/v1/networks",
        "/v1/networks/{name}",
        "/v1/networks/{name}/start",
        "/v1/networks/{name}/stop",
        "/v1/health",
        "/v1/hosts",
        "/v1/tokens",
    ]:
        assert path in doc["paths"], path
    assert "NetworkDefinition" in doc["components"]["schemas"]
    body = doc["paths"]["/v1/networks"]["post"]["requestBody"]["content"]
    assert "application/json" in body
