"""HTTP conventions every router shares: raw bodies, content negotiation, If-Match, ?wait.

Routes are plain ``def`` functions, which FastAPI runs in its thread pool, so nothing a route
does (database work, XML parsing, waiting for an operation) blocks the event loop. A route
that reads its body itself (JSON or XML) takes it as ``RawBody``: the one async step.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.port_views import operation_view
from app.models import Operation, Port
from app.services import operations, retry
from app.services.context import Ctx
from app.services.errors import Conflict, PreconditionFailed

log = logging.getLogger("virtnet.api")
Wait = Annotated[
    float | None,
    Query(ge=0, le=300, description="block up to this many seconds until the operation is done"),
]


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def sends_xml(request: Request) -> bool:
    return "xml" in request.headers.get("content-type", "")


def wants_xml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "xml" in accept and "json" not in accept


def revision_precondition(if_match: str | None, read_only: dict[str, Any]) -> int | None:
    """The revision a write is based on: If-Match, else the ``status`` a client sent back."""
    if if_match is None:
        status = read_only.get("status")
        revision = status.get("revision") if isinstance(status, dict) else None
        return revision if isinstance(revision, int) else None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise PreconditionFailed(f"If-Match {if_match!r} is not a revision this API issued")
    return int(text)


def settle(ctx: Ctx, op: Operation, wait: float | None) -> Operation:
    """The operation once done, or as it is when ``wait`` runs out. The change it carries
    is committed: if the database stops answering meanwhile, the answer is the operation as
    it was (a 202), never a 5xx that would hide the commit."""
    if not wait:
        return op
    try:
        return operations.wait(ctx, op.id, wait)
    except (DBAPIError, PoolTimeout) as exc:
        if not retry.is_outage(exc):
            raise
        log.warning("waiting for operation %s: the database does not answer (%s)", op.id, exc)
        return op


def settle_port(ctx: Ctx, op: Operation, port: Port, wait: float | None) -> tuple[Operation, Port]:
    """``settle``, and the port as it is then (read with the operation, in one statement)."""
    if not wait:
        return op, port
    try:
        op, fresh = operations.wait_port(ctx, op.id, wait, port.id)
    except (DBAPIError, PoolTimeout) as exc:
        if not retry.is_outage(exc):
            raise
        log.warning("waiting for operation %s: the database does not answer (%s)", op.id, exc)
        return op, port
    return op, fresh or port


def action_response(ctx: Ctx, op: Operation, wait: float | None) -> JSONResponse:
    """An action that touches a host: 202 with its operation, or 200 once it is done; 409
    when the host refused it (a tap in use), naming what it left alone."""
    op = settle(ctx, op, wait)
    if op.state == "refused":
        raise Conflict(
            f"{op.error}; nothing was removed (operation {op.id}); stop the guest first, "
            "or repeat with ?force=true"
        )
    done = op.state in operations.FINISHED
    return JSONResponse(
        jsonable_encoder(operation_view(op)),
        status_code=200 if done else 202,
        headers={"Location": f"/v1/operations/{op.id}"},
    )
