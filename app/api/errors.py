"""Every error leaves the API as application/problem+json (RFC 9457).

The one place where the layers' errors become HTTP statuses: services raise a kind of
ServiceError, the definitions layer an InvalidDocument of a kind; neither knows HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.conf.errors import InvalidDocument, Problem, error_location
from app.services import retry
from app.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unauthorized,
)

log = logging.getLogger("virtnet.api")
PROBLEM = "application/problem+json"
#: a problem lists at most this many errors, then says how many it left out
MAX_ERRORS = 50

#: each kind of service error as (status, title); a kind not listed is a plain 400
SERVICE_STATUS: dict[type[ServiceError], tuple[int, str]] = {
    ServiceError: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    PreconditionFailed: (412, "Precondition failed"),
    Invalid: (422, "Invalid definition"),
    Forbidden: (403, "Forbidden"),
    Unauthorized: (401, "Unauthorized"),
}
#: each kind of refused document as (status, title)
DOCUMENT_STATUS: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed request"),
    "too_large": (413, "Invalid request"),
    "invalid": (422, "Invalid request"),
}


#: seconds a client is told to wait (Retry-After) when the database or broker is down
RETRY_AFTER = 5
#: each table's unique columns as the fields a client sent; a column not listed is its own name
FIELDS: dict[str, dict[str, str]] = {
    "networks": {"bridge": "bridge.name", "vni": "overlay.vni"},
    "ports": {"network_id": "network", "host": "host"},
}
WHAT = {"networks": "network", "ports": "port", "domains": "domain", "tokens": "token"}


def service_status(exc: ServiceError) -> tuple[int, str]:
    """The status and title of the nearest kind of ``exc`` that has one."""
    for kind in type(exc).__mro__:
        if kind in SERVICE_STATUS:
            return SERVICE_STATUS[kind]
    raise AssertionError("ServiceError itself has a status")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: Iterable[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    errors = list(errors)
    if errors:
        body["errors"] = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        body["errors_omitted"] = more
        body["detail"] = f"{detail} (and {more} more errors not listed)"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def field_path(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "(document)"


def problems_to_errors(
    problems: Iterable[Problem], locate: Callable[[Sequence[str | int]], Any] | None = None
) -> list[dict[str, Any]]:
    """Each problem with its field's path in the format the client sent: a JSON path, or
    with ``locate`` (an XML body's Findings.locate) the XPath and line of the XML."""
    if locate is None:
        return [{"field": field_path(p.loc), "message": p.msg} for p in problems]
    return [
        {"field": where.path, "line": where.line, "message": p.msg}
        for p in problems
        for where in [locate(p.loc)]
    ]


def pydantic_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        full, message = error_location(err)
        loc = [p for p in full if p != "body"]
        if err.get("type") == "extra_forbidden":
            message = "unknown field; check its spelling against the API reference"
        out.append({"field": field_path(loc), "message": message})
    return out


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a broker that does not answer raises while a message is sent."""
    import kombu.exceptions
    import redis

    return (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError)


def unavailable(detail: str) -> JSONResponse:
    return problem(503, "Service unavailable", detail, headers={"Retry-After": str(RETRY_AFTER)})


def conflict_problem(exc: IntegrityError) -> JSONResponse:
    """A clash the database caught (the request raced another): 409 naming the field."""
    found = retry.duplicate(exc)
    notes = getattr(exc, "__notes__", [])
    if found is None:
        clash = "the request clashed with a change made at the same time; nothing was changed"
        detail = notes[0] if notes else clash
        return problem(409, "Conflict", detail)
    table = found.table or ""
    fields = [FIELDS.get(table, {}).get(c, c) for c in found.columns]
    shown = ", ".join(fields) or "a unique field"
    value = f" {', '.join(found.values)!s}" if found.values else ""
    detail = f"another {WHAT.get(table, 'object')} already has {shown}{value}; nothing was changed"
    errors = [
        {"field": f, "message": "already taken (by a request made at the same time)"}
        for f in fields
    ]
    return problem(409, "Conflict", detail, errors=errors)


def storage_problem(exc: BaseException) -> JSONResponse | None:
    """The answer to a database or broker failure of a request that committed nothing, or
    None for an error that is a bug (a 500)."""
    if isinstance(exc, IntegrityError):
        return conflict_problem(exc)
    if isinstance(exc, DataError):  # a value the database cannot take, in a path, say
        why = str(exc.orig).splitlines()[0] if exc.orig is not None else "an invalid value"
        return problem(
            422,
            "Invalid request",
            f"a value in the request cannot be stored or looked up ({why}); nothing was changed",
        )
    if isinstance(exc, StaleDataError):
        return problem(
            409,
            "Conflict",
            "another request changed or removed the same objects at the same time; nothing "
            "was changed; GET them again and retry",
        )
    if retry.is_lock_timeout(exc):
        log.warning("gave up waiting for a lock: %s", exc)
        return unavailable(
            "what this request changes stayed locked by another transaction for longer than "
            "VIRTNET_DB_LOCK_TIMEOUT_SECONDS; nothing was changed; retry later"
        )
    if retry.is_outage(exc):
        log.warning("database unreachable: %s", exc)
        return unavailable("the database does not answer; nothing was changed; retry later")
    if retry.is_race(exc):  # still losing after every attempt
        return unavailable("too many concurrent changes to the same objects; retry")
    if isinstance(exc, broker_errors()):
        log.warning("broker unreachable: %s", exc)
        return unavailable("the message broker does not answer; nothing was changed; retry")
    return None


def in_doubt_response() -> JSONResponse:
    """The database went away while a commit was on its way: whether it happened, nobody
    here can tell, so the client must look before it repeats a change."""
    return unavailable(
        "the database stopped answering while the change was being committed: it may or may "
        "not have been made; once the database is back, GET the object before you retry"
    )


def committed_response(exc: BaseException) -> JSONResponse:
    """A request that failed after its commit: its change takes effect, so no 5xx."""
    if isinstance(exc, broker_errors()):
        why = "the hosts are told when the broker answers again"
    else:
        why = f"its result could not be read back ({type(exc).__name__})"
    return JSONResponse(
        {
            "status": "committed",
            "detail": f"the change was committed and takes effect; {why}; GET the object for "
            "its state",
        },
        status_code=202,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        status, title = service_status(exc)
        return problem(
            status,
            title,
            exc.detail,
            errors=problems_to_errors(exc.problems, getattr(request.state, "xml_locate", None)),
            headers=headers,
        )

    @app.exception_handler(InvalidDocument)
    async def _document(_: Request, exc: InvalidDocument) -> JSONResponse:
        status, title = DOCUMENT_STATUS[exc.kind]
        return problem(status, title, exc.detail, errors=exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = pydantic_errors(exc.errors())
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem(400, "Malformed request", "the body is not valid JSON", errors=errors)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(
            exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "virtnet hit an unexpected error; see its log")
