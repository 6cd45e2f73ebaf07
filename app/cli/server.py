"""Starting the service's processes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from app.config import Settings, parse_listen
from app.services.schema import upgrade_database


def run_api(
    settings: Settings, listen: str | None, on_exit: Callable[[], None] | None = None
) -> None:
    """The API in this process; ``on_exit`` runs as soon as SIGTERM or SIGINT arrives."""
    from app.api.main import create_app
    from app.cli.api_server import QuietServer, config, run_workers
    from app.supervisor import freeze_startup_objects

    host, port = parse_listen(listen or settings.listen)
    if settings.api_workers > 1:
        run_workers(_tcp_listener(host, port), settings.api_workers, on_exit)
    else:
        app = create_app(settings)
        freeze_startup_objects()
        QuietServer(config(app, host, port), on_exit).run()


def _tcp_listener(host: str, port: int) -> socket.socket:
    """The socket the API workers share, made as uvicorn's ``bind_socket`` makes it but with
    its protocol set: uvicorn's leaves it 0, the accepted connections inherit that, and
    asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets, so each keep-alive request then
    waited ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"virtnet: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


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
    """Everything one machine needs: the API here; the broker and both workers supervised."""
    from app.embedded_broker import redis_server_argv
    from app.host_identity import report_secret
    from app.supervisor import Child, Supervisor

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Until uvicorn takes the signals over (and after it hands them back, when it re-raises
    # the one that stopped it), SIGTERM and SIGINT end `serve` through the `finally` below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    children: list[Child] = []
    if not settings.broker_url:
        children.append(Child("broker", redis_server_argv(settings), last_to_stop=True))
    me = [sys.executable, "-m", "app.cli.main"]
    worker = [*me, "worker", "--host", settings.host_name]
    if settings.netns:
        worker += ["--netns", settings.netns]
    children += [Child("control-worker", [*me, "control-worker"]), Child("host-worker", worker)]
    supervisor = Supervisor(children, settings.state_dir)
    try:
        upgrade_database(settings)
        _first_admin_token(settings)
        report_secret(settings, create=True)  # before the workers: both read it from there
        supervisor.start()
        # the children stop while uvicorn lets open requests finish
        run_api(settings, listen, on_exit=supervisor.begin_stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        supervisor.stop()
    return 0


def _exit_on_signal(sig: int, _frame: object) -> None:
    raise SystemExit(0)
