from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.db import get_sessionmaker
from app.services import tokens
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests import services


@pytest.fixture(params=["postgresql", "sqlite"])
def api_settings(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[Settings]:
    """The API tests run on PostgreSQL, and the same tests again on the embedded SQLite."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    services.empty_tables(url)
    yield Settings(database_url=url, broker_url=redis_url, state_dir=tmp_path)


def make_token(settings: Settings, role: str) -> str:
    with get_sessionmaker(settings.effective_database_url)() as session:
        _, secret = tokens.create(Ctx(session, Outbox(None), settings), role=role)
    return secret


@pytest.fixture
def api(api_settings: Settings) -> FastAPI:
    return create_app(api_settings)


def client_for(api: FastAPI, secret: str | None) -> TestClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return TestClient(api, headers=headers)


@pytest.fixture
def anon(api: FastAPI) -> TestClient:
    return client_for(api, None)


@pytest.fixture
def client(api: FastAPI, api_settings: Settings) -> TestClient:
    """An operator-role client: what most lifecycle calls need."""
    return client_for(api, make_token(api_settings, "operator"))


@pytest.fixture
def reader(api: FastAPI, api_settings: Settings) -> TestClient:
    return client_for(api, make_token(api_settings, "reader"))


@pytest.fixture
def admin(api: FastAPI, api_settings: Settings) -> TestClient:
    return client_for(api, make_token(api_settings, "admin"))


def assert_problem(response, status: int, field: str | None = None, says: str = "") -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    assert says.lower() in response.text.lower(), body
    return body
