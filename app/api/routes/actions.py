"""Shared shape of actions that touch a host: 202 with an operation, or 200 once done."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.port_views import operation_view
from app.models import Operation
from app.services import operations
from app.services.context import Ctx
from app.services.errors import Conflict

Wait = Annotated[
    float | None,
    Query(ge=0, le=300, description="block up to this many seconds until the operation is done"),
]


def settle(ctx: Ctx, op: Operation, wait: float | None) -> Operation:
    return operations.wait(ctx, op.id, wait) if wait else op


def action_response(ctx: Ctx, op: Operation, wait: float | None) -> JSONResponse:
    """202 with the operation, or 200 once done; 409 when the host refused it (a tap in
    use), naming what it left alone."""
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
