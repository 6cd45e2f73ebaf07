"""Starting the service's processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from app.config import Settings, parse_listen
from app.services.schema import upgrade_database


def run_api(settings: Settings, listen: str | None) -> None:
    import uvicorn

    from app.api.main import create_app

    host, port = parse_listen(listen or settings.listen)
    if settings.api_workers > 1:
        # each worker process builds its app from the same VIRTNET_* environment
        uvicorn.run(
            "app.api.main:create_app",
            factory=True,
            workers=settings.api_workers,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def create_token(settings: Settings, *, role: str, name: str) -> str:
    from app.db import get_sessionmaker
    from app.services import tokens
    from app.services.context import Ctx
    from app.services.outbox import Outbox

    with get_sessionmaker(settings.effective_database_url)() as session:
        _, secret = tokens.create(Ctx(session, Outbox(None), settings), role=role, name=name)
    return secret


def _first_admin_token(settings: Settings) -> None:
    """With no token configured and none stored, make one and leave it where root can read it."""
    from sqlalchemy import func, select

    from app.db import get_sessionmaker
    from app.models import Token

    with get_sessionmaker(settings.effective_database_url)() as session:
        if session.scalar(select(func.count()).select_from(Token)):
            return
    secret = create_token(settings, role="admin", name="first-admin")
    path = settings.state_dir / "admin-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    print(f"virtnet: created an admin token in {path}", file=sys.stderr)


def serve(settings: Settings, listen: str | None) -> int:
    """Everything one machine needs: the API here, both workers as child processes."""
    upgrade_database(settings)
    _first_admin_token(settings)
    me = [sys.executable, "-m", "app.cli.main"]
    worker = [*me, "worker", "--host", settings.host_name]
    if settings.netns:
        worker += ["--netns", settings.netns]
    children = [subprocess.Popen([*me, "control-worker"]), subprocess.Popen(worker)]
    try:
        run_api(settings, listen)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    return 0
