"""/v1/networks/{name}/ports and /v1/operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.body import parse_json, parse_json_list
from app.api.deps import CtxDep, Operator, Reader
from app.api.http import (
    RawBody,
    Wait,
    action_response,
    sends_xml,
    settle,
    settle_port,
    wants_xml,
)
from app.api.port_views import operation_view, port_view
from app.conf.network.model import NetworkDefinition
from app.conf.port.actual import StoredPort
from app.conf.port.model import PortRequest
from app.conf.port.xml import parse_networkport, port_request, port_to_xml
from app.models import Port
from app.services import bulk_ports, operations, port_lifecycle, port_queries, ports
from app.services.context import Ctx
from app.services.ports import MAX_PORTS_PER_BRIDGE

router = APIRouter(prefix="/v1", tags=["ports"])
PORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/PortRequest"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/PortRequest"},
                            "minItems": 1,
                            "maxItems": MAX_PORTS_PER_BRIDGE,
                            "description": "bulk: all or none, one operation; the answer is "
                            "{operation, ports}",
                        },
                    ]
                }
            },
            "application/xml": {
                "schema": {
                    "type": "string",
                    "description": "libvirt <networkport>; ?host= names the host",
                }
            },
        },
    }
}
XmlHost = Annotated[
    str | None,
    Query(
        description="with an XML body: the host to plug the port on (libvirt's <networkport> "
        "does not say); a JSON body gives it as host"
    ),
]


def _xml_request(
    request: Request, ctx: Ctx, name: str, raw: bytes, host: str | None
) -> PortRequest:
    parsed = parse_networkport(raw)  # a hostile or broken body is refused before anything
    request.state.xml_locate = parsed[1].locate  # errors name XML places (app/api/errors.py)
    network = ports.network_for_ports(ctx, name)
    live = NetworkDefinition.model_validate(network.live or network.definition)
    return port_request(parsed, host=host, network=live)


def _port_json(port: Port, network_name: str) -> dict[str, Any]:
    return jsonable_encoder(port_view(port, network_name))


@router.post("/networks/{name}/ports", status_code=202, openapi_extra=PORT_BODY)
def create_port(
    name: str,
    request: Request,
    raw: RawBody,
    ctx: CtxDep,
    _: Operator,
    wait: Wait = None,
    host: XmlHost = None,
) -> Response:
    if sends_xml(request):
        body = _xml_request(request, ctx, name, raw, host)
    elif raw.lstrip().startswith(b"["):
        return _create_many(ctx, name, raw, wait)
    else:
        body, _extra = parse_json(raw, PortRequest)
    port, op = port_lifecycle.create(ctx, network_name=name, request=body)
    op, port = settle_port(ctx, op, port, wait)
    status = 201 if op.state in operations.FINISHED else 202
    headers = {"Location": f"/v1/networks/{name}/ports/{port.id}"}
    if wants_xml(request):
        xml = port_to_xml(StoredPort.of(port))
        return Response(xml, status, headers, media_type="application/xml")
    return JSONResponse(_port_json(port, name), status_code=status, headers=headers)


def _create_many(ctx: Ctx, name: str, raw: bytes, wait: float | None) -> JSONResponse:
    requests = parse_json_list(raw, PortRequest, most=MAX_PORTS_PER_BRIDGE)
    made, op = bulk_ports.create(ctx, network_name=name, requests=requests)
    op = settle(ctx, op, wait)
    if op.state in operations.FINISHED:
        made = bulk_ports.reread(ctx, made)
    body = {"operation": operation_view(op), "ports": [port_view(p, name) for p in made]}
    status = 200 if op.state in operations.FINISHED else 202
    return JSONResponse(jsonable_encoder(body), status_code=status)


@router.get("/networks/{name}/ports")
def list_ports(name: str, ctx: CtxDep, _: Reader) -> list[dict[str, Any]]:
    network = ports.network_for_ports(ctx, name)
    return [
        jsonable_encoder(port_view(p, network.name))
        for p in port_queries.network_ports(ctx, network.id)
    ]


@router.get("/networks/{name}/ports/{port_id}")
def get_port(name: str, port_id: str, request: Request, ctx: CtxDep, _: Reader) -> Any:
    """The port; with Accept: application/xml, libvirt's <networkport> (plug = actual device)."""
    network = ports.network_for_ports(ctx, name)
    port = ports.get(ctx, network, port_id)
    if wants_xml(request):
        return Response(port_to_xml(StoredPort.of(port)), media_type="application/xml")
    return jsonable_encoder(port_view(port, network.name))


@router.delete("/networks/{name}/ports/{port_id}", status_code=202)
def delete_port(
    name: str, port_id: str, ctx: CtxDep, _: Operator, wait: Wait = None
) -> JSONResponse:
    op = port_lifecycle.remove(ctx, network_name=name, port_id=port_id)
    return action_response(ctx, op, wait)


@router.get("/operations/{op_id}", tags=["operations"])
def get_operation(op_id: str, ctx: CtxDep, _: Reader, wait: Wait = None) -> dict[str, Any]:
    op = operations.wait(ctx, op_id, wait) if wait else operations.get(ctx, op_id)
    return jsonable_encoder(operation_view(op))
