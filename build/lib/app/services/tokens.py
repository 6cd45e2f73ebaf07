"""API tokens: random secrets, stored only as SHA-256 digests, each with one role."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Token
from app.services.context import Ctx
from app.services.errors import NotFound, Unauthorized

ROLES = ("reader", "operator", "admin")
TOKEN_PREFIX = "vn_"


def digest(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; no salt or KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def create(ctx: Ctx, *, role: str, name: str = "") -> tuple[Token, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(name=name, role=role, token_hash=digest(secret))
    ctx.db.add(token)
    ctx.db.commit()
    return token, secret


def authenticate(ctx: Ctx, secret: str) -> Token:
    token = ctx.db.scalar(select(Token).where(Token.token_hash == digest(secret)))
    if token is None:
        raise Unauthorized("the bearer token is not known; create one with 'virtnet token create'")
    return token


def listing(ctx: Ctx) -> list[Token]:
    return list(ctx.db.scalars(select(Token).order_by(Token.id)))


def revoke(ctx: Ctx, *, token_id: int) -> None:
    token = ctx.db.get(Token, token_id)
    if token is None:
        raise NotFound(f"token {token_id} does not exist")
    ctx.db.delete(token)
    ctx.db.commit()


def ensure_bootstrap(db: Session, secret: str | None) -> bool:
    """On a database with no tokens yet, make the configured bootstrap secret an admin token."""
    if not secret:
        return False
    with db.begin():
        if db.scalar(select(func.count()).select_from(Token)):
            return False
        db.add(Token(name="bootstrap", role="admin", token_hash=digest(secret)))
    return True
