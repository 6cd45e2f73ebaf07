"""/docs works offline; /metrics can require a bearer token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings

METRICS_TOKEN = "scrape-" + "s3cret" * 4


@pytest.fixture
def app_settings(sqlite_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=sqlite_url, broker_url=redis_url, state_dir=tmp_path)


def test_docs_page_loads_everything_from_this_server(app_settings: Settings) -> None:
    client = TestClient(create_app(app_settings))
    page = client.get("/docs")
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(
        r"url: '([^']+)'", page.text
    )
    assert len(refs) >= 4 and "cdn" not in page.text.lower()
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        r = client.get(ref)
        assert r.status_code == 200 and len(r.content) > 100, ref
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_metrics_open_by_default(app_settings: Settings) -> None:
    assert TestClient(create_app(app_settings)).get("/metrics").status_code == 200


def test_metrics_token_setting_requires_bearer(app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    client = TestClient(create_app(settings))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
        assert "virtnet_" not in r.text
    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200 and "virtnet_http_requests" in r.text


def test_empty_metrics_token_means_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTNET_METRICS_TOKEN", "")
    assert Settings().metrics_token is None
