"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import errors
from app.api.body import BodyLimit
from app.api.routes import networks, system
from app.celery_app import make_celery, task_sender
from app.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="virtnet",
        version="0.1.0",
        description="Virtual networks for a fleet of Linux hosts, with libvirt's semantics.",
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.task_sender = task_sender(app.state.celery)
    app.add_middleware(BodyLimit)
    errors.install(app)
    app.include_router(system.router)
    app.include_router(networks.router)
    return app
