"""/v1/networks: thin handlers over app.services.networks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.body import parse_json
from app.api.deps import CtxDep, Operator, Reader
from app.api.http import RawBody, revision_precondition, sends_xml, wants_xml
from app.api.requests import AutostartRequest
from app.api.views import NetworkView, Page, network_view
from app.conf.common import DB_INT_MAX, compact
from app.conf.network.model import NetworkDefinition
from app.conf.network.update import UpdateRequest
from app.conf.network.xml import network_to_xml, read_network_xml
from app.services import network_update, networks, overlay, realisation
from app.services.context import Ctx

router = APIRouter(prefix="/v1/networks", tags=["networks"])

DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/NetworkDefinition"}},
            "application/xml": {"schema": {"type": "string", "description": "libvirt <network>"}},
        },
    }
}


def _body(ctx: Ctx, network: Any, *, inactive: bool = False) -> dict[str, Any]:
    view = network_view(
        network,
        realisation.realisations(ctx, network.id),
        inactive=inactive,
        overlay=overlay.host_view(ctx, network),
        gateway=realisation.gateway_status(ctx, network),
    )
    body = NetworkView.model_validate(view).model_dump(mode="json")
    return {**compact(body), "status": body["status"]}


def _view(
    ctx: Ctx, network: Any, *, inactive: bool = False, request: Request | None = None
) -> Response:
    body = _body(ctx, network, inactive=inactive)
    headers = {"ETag": f'"{network.revision}"'}
    if request is not None and wants_xml(request):
        return Response(network_to_xml(body), media_type="application/xml", headers=headers)
    return JSONResponse(body, headers=headers)


def _definition(request: Request, raw: bytes) -> tuple[NetworkDefinition, dict[str, Any]]:
    if sends_xml(request):
        definition, found = read_network_xml(raw)
        request.state.xml_locate = found.locate  # errors name XML places (app/api/errors.py)
        return definition, {}
    return parse_json(raw, NetworkDefinition, read_only=("status",))


@router.post("", status_code=201, response_model=NetworkView, openapi_extra=DEFINITION_BODY)
def define_network(
    request: Request,
    raw: RawBody,
    ctx: CtxDep,
    _: Operator,
    start: Annotated[bool, Query(description="create a transient, started network")] = False,
) -> Response:
    definition, _read_only = _definition(request, raw)
    network = networks.define(ctx, definition=definition, start=start)
    response = _view(ctx, network, request=request)
    response.status_code = 201
    response.headers["Location"] = f"/v1/networks/{network.name}"
    return response


@router.get("", response_model=Page[NetworkView])
def list_networks(
    ctx: CtxDep,
    _: Reader,
    state: Literal["inactive", "starting", "active", "failed"] | None = None,
    autostart: bool | None = None,
    persistent: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> dict[str, Any]:
    rows, total = networks.listing(
        ctx, state=state, autostart=autostart, persistent=persistent, limit=limit, offset=offset
    )
    items = [_body(ctx, n) for n in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{name}", response_model=NetworkView)
def get_network(
    name: str,
    request: Request,
    ctx: CtxDep,
    _: Reader,
    inactive: Annotated[
        bool, Query(description="the stored definition, not the running one")
    ] = False,
) -> Response:
    return _view(ctx, networks.get(ctx, name), inactive=inactive, request=request)


@router.put("/{name}", response_model=NetworkView, openapi_extra=DEFINITION_BODY)
def update_network(
    name: str,
    request: Request,
    raw: RawBody,
    ctx: CtxDep,
    _: Operator,
    if_match: Annotated[str | None, Header()] = None,
    live: Annotated[
        bool,
        Query(
            description="change the running network instead of the stored definition: "
            "DHCP hosts and DNS hosts/TXT/SRV apply at once on every host"
        ),
    ] = False,
) -> Response:
    definition, read_only = _definition(request, raw)
    network = (network_update.update_live if live else networks.update)(
        ctx,
        name=name,
        definition=definition,
        if_match=revision_precondition(if_match, read_only),
    )
    return _view(ctx, network, inactive=not live, request=request)


@router.post("/{name}/update", response_model=NetworkView)
def update_network_section(name: str, body: UpdateRequest, ctx: CtxDep, _: Operator) -> Response:
    """libvirt's net-update: add-first, add-last, modify or delete one DHCP host or DNS
    host/TXT/SRV entry; by default of the running network when active, else of the stored
    definition (``live`` and ``config`` choose)."""
    return _view(ctx, network_update.update_section(ctx, name=name, req=body))


@router.get("/{name}/dhcp-leases")
def dhcp_leases(
    name: str,
    ctx: CtxDep,
    _: Reader,
    mac: Annotated[str | None, Query(description="only the leases of this MAC")] = None,
) -> list[dict[str, Any]]:
    """The leases every host's dnsmasq holds for the network (libvirt's net-dhcp-leases)."""
    return realisation.leases(ctx, networks.get(ctx, name), mac)


@router.delete("/{name}", status_code=204, response_model=None)
def undefine_network(name: str, ctx: CtxDep, _: Operator) -> Response:
    network = networks.undefine(ctx, name=name)
    return Response(status_code=204) if network is None else _view(ctx, network)


@router.post("/{name}/start", response_model=NetworkView)
def start_network(name: str, ctx: CtxDep, _: Operator) -> Response:
    return _view(ctx, networks.start(ctx, name=name))


@router.post("/{name}/stop", response_model=NetworkView, status_code=200)
def stop_network(
    name: str,
    ctx: CtxDep,
    _: Operator,
    force: Annotated[bool, Query(description="stop even though ports are attached")] = False,
) -> Response | JSONResponse:
    network = networks.stop(ctx, name=name, force=force)
    return Response(status_code=204) if network is None else _view(ctx, network)


@router.put("/{name}/autostart", response_model=NetworkView)
def set_autostart(name: str, body: AutostartRequest, ctx: CtxDep, _: Operator) -> Response:
    return _view(ctx, networks.set_autostart(ctx, name=name, enabled=body.enabled))
