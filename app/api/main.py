"""The FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app import web
from app.api import docs, errors, metrics
from app.api.body import BodyLimit
from app.api.openapi import document_answers
from app.api.routes import domains, events, health, networks, ports, system
from app.api.transactions import Transactions
from app.celery_app import make_celery, task_sender
from app.conf.domain.model import DomainDefinition, InterfaceDef
from app.conf.network.model import NetworkDefinition
from app.conf.port.model import PortRequest
from app.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="virtnet",
        version="0.1.0",
        description="Virtual networks for a fleet of Linux hosts, with libvirt's semantics.",
        docs_url=None,  # served by app.api.docs from local files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.task_sender = task_sender(app.state.celery)
    app.add_middleware(Transactions)  # innermost: metrics count a request once, not per attempt
    metrics.install(app, settings)
    app.add_middleware(BodyLimit)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(system.router)
    app.include_router(networks.router)
    app.include_router(ports.router)
    app.include_router(domains.router)
    app.include_router(events.router)
    web.mount(app)
    docs.install(app)
    _document_raw_bodies(app)
    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that read JSON or XML themselves still publish the JSON body's schema."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (NetworkDefinition, PortRequest, DomainDefinition, InterfaceDef):
                extra = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(extra.pop("$defs", {}))
                components[model.__name__] = extra
            document_answers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
