"""/v1/hosts and /v1/tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from app.api.deps import Admin, CtxDep, Reader
from app.api.requests import TokenRequest
from app.api.views import HostView, NewTokenView, TokenView, host_view, token_view
from app.conf.common import DB_INT_MAX
from app.services import hosts, intent, tokens

router = APIRouter(prefix="/v1")


@router.get("/hosts", response_model=list[HostView], tags=["hosts"])
def list_hosts(ctx: CtxDep, _: Reader) -> list[dict[str, Any]]:
    revisions = intent.revisions(ctx)
    return [
        host_view(h, ctx.host_is_up(h.last_seen), revisions.get(h.name)) for h in hosts.listing(ctx)
    ]


@router.get("/hosts/{name}", response_model=HostView, tags=["hosts"])
def get_host(name: str, ctx: CtxDep, _: Reader) -> dict[str, Any]:
    host = hosts.get(ctx, name)
    return host_view(host, ctx.host_is_up(host.last_seen), intent.revisions(ctx, name).get(name))


@router.post("/tokens", response_model=NewTokenView, status_code=201, tags=["tokens"])
def create_token(body: TokenRequest, ctx: CtxDep, _: Admin) -> dict[str, Any]:
    token, secret = tokens.create(ctx, role=body.role, name=body.name)
    return {**token_view(token), "token": secret}


@router.get("/tokens", response_model=list[TokenView], tags=["tokens"])
def list_tokens(ctx: CtxDep, _: Admin) -> list[dict[str, Any]]:
    return [token_view(t) for t in tokens.listing(ctx)]


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)], ctx: CtxDep, _: Admin
) -> Response:
    tokens.revoke(ctx, token_id=token_id)
    return Response(status_code=204)
