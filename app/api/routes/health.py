"""/v1/health: open to anyone, so it names states only, never URLs, paths or secrets."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import SettingsDep
from app.celery_app import broker_options, redis_client_url
from app.config import Settings
from app.db import get_sessionmaker
from app.supervisor import read_status

router = APIRouter(prefix="/v1", tags=["system"])
TIMEOUT_SECONDS = 1.0


def database_state(settings: Settings) -> str:
    try:
        with get_sessionmaker(settings.effective_database_url, read_only=True)() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "unreachable"
    return "ok"


def broker_state(settings: Settings) -> str:
    url, options = broker_options(settings)
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(
            redis_client_url(url),
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        except (redis.RedisError, OSError):
            return "unreachable"
        finally:
            client.close()
        return "ok"
    if url.startswith("filesystem"):
        return "ok" if os.access(options["data_folder_in"], os.W_OK) else "unreachable"
    return "ok"


@router.get("/health")
def health(settings: SettingsDep, response: Response) -> dict[str, Any]:
    """Reachability of the database and broker, and, under `virtnet serve`, each process.

    503 when the database cannot be reached (nothing works without it); `degraded` when the
    broker is unreachable or a supervised process is being restarted.
    """
    body: dict[str, Any] = {
        "status": "ok",
        "database": database_state(settings),
        "broker": broker_state(settings),
    }
    serve = read_status(settings.state_dir)
    if serve is not None:
        body["components"] = {"api": {"state": "running", "pid": os.getpid()}}
        body["components"].update(serve["components"])
    if body["database"] != "ok":
        body["status"] = "unavailable"
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    elif body["broker"] != "ok" or any(
        c.get("state") != "running" for c in body.get("components", {}).values()
    ):
        body["status"] = "degraded"
    return body
