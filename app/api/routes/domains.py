"""/v1/domains: definitions, lifecycle actions and interface hot-plug."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.body import parse_json
from app.api.deps import CtxDep, Operator, Reader
from app.api.http import (
    RawBody,
    Wait,
    action_response,
    revision_precondition,
    sends_xml,
    wants_xml,
)
from app.api.port_views import domain_view
from app.api.requests import MigrateRequest
from app.conf.domain.format import domain_to_xml
from app.conf.domain.model import DomainDefinition, InterfaceDef
from app.conf.domain.parse import read_domain_xml
from app.conf.port.actual import StoredPort
from app.models import Domain
from app.services import domains, interface_update, migration
from app.services.context import Ctx
from app.services.port_queries import domain_ports

router = APIRouter(prefix="/v1/domains", tags=["domains"])
XmlHost = Annotated[
    str | None,
    Query(
        description="with an XML body: the host that runs the domain (libvirt's <domain> does "
        "not say; on PUT the domain's current host by default); a JSON body gives it as host"
    ),
]


def _schema_body(name: str, xml: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
    }
    if xml is not None:
        content["application/xml"] = {"schema": {"type": "string", "description": xml}}
    return {"requestBody": {"required": True, "content": content}}


def _view(
    ctx: Ctx,
    domain: Domain,
    status: int = 200,
    *,
    request: Request | None = None,
    inactive: bool = False,
    status_xml: bool = False,
) -> Response:
    headers = {"ETag": f'"{domain.revision}"'}
    live = domain_ports(ctx, domain)
    if request is not None and wants_xml(request):
        ports = [StoredPort.of(p) for p in live]
        text = domain_to_xml(domain.definition, ports, live=not inactive, status=status_xml)
        return Response(text, status, headers, media_type="application/xml")
    body = jsonable_encoder(domain_view(domain, live))
    return JSONResponse(body, status_code=status, headers=headers)


def _definition(
    request: Request, raw: bytes, host: str | None, ctx: Ctx, name: str | None = None
) -> tuple[DomainDefinition, dict[str, Any]]:
    if not sends_xml(request):
        read_only = ("status",) if name is not None else ()  # PUT takes back a GET's status
        return parse_json(raw, DomainDefinition, read_only=read_only)
    if host is None and name is not None:
        host = domains.get(ctx, name).host
    definition, found = read_domain_xml(raw, host)
    request.state.xml_locate = found.locate  # errors name XML places (app/api/errors.py)
    return definition, {}


DOMAIN_XML = "libvirt <domain>; ?host= names the host"


@router.post("", status_code=201, openapi_extra=_schema_body("DomainDefinition", DOMAIN_XML))
def define_domain(
    request: Request, raw: RawBody, ctx: CtxDep, _: Operator, host: XmlHost = None
) -> Response:
    definition, _extra = _definition(request, raw, host, ctx)
    domain = domains.define(ctx, definition=definition)
    response = _view(ctx, domain, 201, request=request)
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
def get_domain(
    name: str,
    request: Request,
    ctx: CtxDep,
    _: Reader,
    inactive: Annotated[bool, Query(description="XML: the definition, not the live form")] = False,
    status: Annotated[
        bool, Query(description="XML: libvirt's status form, with <actual> in each interface")
    ] = False,
) -> Response:
    """The domain; with Accept: application/xml, libvirt's <domain> (live while running)."""
    return _view(ctx, domains.get(ctx, name), request=request, inactive=inactive, status_xml=status)


@router.put("/{name}", openapi_extra=_schema_body("DomainDefinition", DOMAIN_XML))
def update_domain(
    name: str,
    request: Request,
    raw: RawBody,
    ctx: CtxDep,
    _: Operator,
    if_match: Annotated[str | None, Header()] = None,
    host: XmlHost = None,
) -> Response:
    definition, extra = _definition(request, raw, host, ctx, name)
    domain = domains.update(
        ctx,
        name=name,
        definition=definition,
        if_match=revision_precondition(if_match, extra),
    )
    return _view(ctx, domain, request=request)


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


Force = Annotated[
    bool,
    Query(description="also remove taps a hypervisor holds open (without: 409 naming them)"),
]


@router.post("/{name}/stop", status_code=202)
def stop_domain(
    name: str, ctx: CtxDep, _: Operator, wait: Wait = None, force: Force = False
) -> JSONResponse:
    return action_response(ctx, domains.stop(ctx, name=name, force=force), wait)


@router.post("/{name}/suspend", status_code=202)
def suspend_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.suspend(ctx, name=name), wait)


@router.post("/{name}/migrate", status_code=202)
def migrate_domain(
    name: str, body: MigrateRequest, ctx: CtxDep, _: Operator, wait: Wait = None
) -> JSONResponse:
    """Move the domain's ports to another host: plug there with the entries withheld, switch
    every host's entries at once, unplug on the source. The operation's result gives the
    measured switchover time."""
    return action_response(ctx, migration.start(ctx, name=name, host=body.host), wait)


@router.post("/{name}/resume", status_code=202)
def resume_domain(name: str, ctx: CtxDep, _: Operator, wait: Wait = None) -> JSONResponse:
    return action_response(ctx, domains.resume(ctx, name=name), wait)


@router.post("/{name}/interfaces", status_code=202, openapi_extra=_schema_body("InterfaceDef"))
def attach_interface(
    name: str, raw: RawBody, ctx: CtxDep, _: Operator, wait: Wait = None
) -> JSONResponse:
    interface, _extra = parse_json(raw, InterfaceDef)
    op = domains.attach(ctx, name=name, interface=interface)
    return action_response(ctx, op, wait)


@router.put("/{name}/interfaces/{mac}", status_code=202, openapi_extra=_schema_body("InterfaceDef"))
def update_interface(
    name: str, mac: str, raw: RawBody, ctx: CtxDep, _: Operator, wait: Wait = None
) -> Response:
    """Replace one interface (virsh update-device): on a running domain its bandwidth and
    port isolation apply to the same tap, without replugging (202 with an operation)."""
    interface, _extra = parse_json(raw, InterfaceDef)
    domain = domains.get(ctx, name)
    op = interface_update.update_interface(ctx, domain=domain, mac=mac, interface=interface)
    if op is None:
        return _view(ctx, domain)
    return action_response(ctx, op, wait)


@router.delete("/{name}/interfaces/{mac}", status_code=202)
def detach_interface(
    name: str, mac: str, ctx: CtxDep, _: Operator, wait: Wait = None, force: Force = False
) -> JSONResponse:
    return action_response(ctx, domains.detach(ctx, name=name, mac=mac, force=force), wait)
