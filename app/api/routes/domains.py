"""/v1/domains: definitions, lifecycle actions and interface hot-plug."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.body import parse_json
from app.api.deps import CtxDep, Operator, Reader
from app.api.routes.actions import Wait, action_response
from app.api.routes.networks import revision_precondition, run_blocking
from app.models import Domain
from app.schemas.port import DomainDefinition, InterfaceDef
from app.schemas.port_views import domain_view
from app.services import domains
from app.services.context import Ctx
from app.services.domain_state import domain_ports

router = APIRouter(prefix="/v1/domains", tags=["domains"])


def _schema_body(name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _view(ctx: Ctx, domain: Domain, status: int = 200) -> JSONResponse:
    body = jsonable_encoder(domain_view(domain, domain_ports(ctx, domain)))
    return JSONResponse(body, status_code=status, headers={"ETag": f'"{domain.revision}"'})


@router.post("", status_code=201, openapi_extra=_schema_body("DomainDefinition"))
async def define_domain(request: Request, ctx: CtxDep, _: Operator) -> JSONResponse:
    definition, _extra = parse_json(await request.body(), DomainDefinition)
    domain = await run_blocking(domains.define, ctx, definition=definition)
    response = _view(ctx, domain, 201)
    response.headers["Location"] = f"/v1/domains/{domain.name}"
    return response


@router.get("")
def list_domains(
    ctx: CtxDep,
    _: Reader,
    state: Literal["shut_off", "starting", "running", "paused", "stopping"] | None = None,
) -> list[dict[str, Any]]:
    return [
        jsonable_encoder(domain_view(d, domain_ports(ctx, d)))
        for d in domains.listing(ctx, state=state)
    ]


@router.get("/{name}")
def get_domain(name: str, ctx: CtxDep, _: Reader) -> JSONResponse:
    return _view(ctx, domains.get(ctx, name))


@router.put("/{name}", openapi_extra=_schema_body("DomainDefinition"))
async def update_domain(
    name: str,
    request: Request,
    ctx: CtxDep,
    _: Operator,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    definition, extra = parse_json(await request.body(), DomainDefinition, read_only=("status",))
    domain = await run_blocking(
        domains.update,
        ctx,
        name=name,
        definition=definition,
        if_match=revision_precondition(if_match, extra),
    )
    return _view(ctx, domain)


@router.delete("/{name}", status_code=204, response_model=None)
def undefine_domain(
    name: str,
    ctx: CtxDep,
    _: Operator,
    force: Annotated[bool, Query(description="stop a running domain first")] = False,
    wait: Wait = None,
) -> Response:
    op = domains.undefine(ctx, name=name, force=force)
    return Response(status_code=204) if op is None else action_response(ctx, op, wait)


@router.post("/{name}/start", status_code=202)
def start_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.start(ctx, name=name), wait)


@router.post("/{name}/stop", status_code=202)
def stop_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.stop(ctx, name=name), wait)


@router.post("/{name}/suspend", status_code=202)
def suspend_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.suspend(ctx, name=name), wait)


@router.post("/{name}/resume", status_code=202)
def resume_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.resume(ctx, name=name), wait)


@router.post("/{name}/interfaces", status_code=202, openapi_extra=_schema_body("InterfaceDef"))
async def attach_interface(
    name: str, request: Request, ctx: CtxDep, _: Operator, wait: Wait = None
) -> JSONResponse:
    interface, _extra = parse_json(await request.body(), InterfaceDef)
    op = await run_blocking(domains.attach, ctx, name=name, interface=interface)
    return await run_blocking(action_response, ctx, op, wait)


@router.delete("/{name}/interfaces/{mac}", status_code=202)
def detach_interface(
    name: str, mac: str, ctx: CtxDep, _: Operator, wait: Wait = None
) -> JSONResponse:
    return action_response(ctx, domains.detach(ctx, name=name, mac=mac), wait)
