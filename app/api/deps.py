"""Typed dependencies: settings, a service context per request, the caller's token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.api.transactions import close, watch
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Token
from app.services import tokens
from app.services.context import Ctx
from app.services.errors import Forbidden, Unauthorized
from app.services.outbox import Outbox


async def get_settings(request: Request) -> Settings:
    # async: FastAPI runs a plain def dependency in its thread pool, a hop per request
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_ctx(request: Request, settings: SettingsDep) -> Iterator[Ctx]:
    # GET and HEAD only read: on SQLite they must not queue behind (or block) writers
    read_only = request.method in {"GET", "HEAD"}
    session: Session = get_sessionmaker(settings.effective_database_url, read_only=read_only)()
    watch(request, session)
    try:
        yield Ctx(db=session, outbox=Outbox(request.app.state.task_sender), settings=settings)
    finally:
        close(session)


CtxDep = Annotated[Ctx, Depends(get_ctx)]


def bearer_secret(request: Request) -> str | None:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _bearer(request: Request) -> str:
    secret = bearer_secret(request)
    if secret is None:
        raise Unauthorized("send 'Authorization: Bearer <token>'; 'virtnet token create' makes one")
    return secret


def require(role: str) -> Callable[..., Token]:
    def check(request: Request, ctx: CtxDep) -> Token:
        # the route's service goes on in the same transaction: the token's read costs no
        # round trips of its own (no BEGIN, ROLLBACK, and a second connection checkout)
        token = tokens.authenticate(ctx, _bearer(request))
        if not tokens.role_allows(token.role, role):
            raise Forbidden(f"this needs the {role!r} role; your token has {token.role!r}")
        return token

    return check


Reader = Annotated[Token, Depends(require("reader"))]
Operator = Annotated[Token, Depends(require("operator"))]
Admin = Annotated[Token, Depends(require("admin"))]
