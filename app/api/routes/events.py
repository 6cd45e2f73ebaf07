"""/v1/events: lifecycle events as Server-Sent Events, replayable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep, bearer_secret
from app.conf.common import DB_INT_MAX
from app.config import Settings
from app.db import get_sessionmaker
from app.services import events, retry, tokens
from app.services.context import Ctx
from app.services.errors import Forbidden, Invalid, Unauthorized
from app.services.outbox import Outbox

router = APIRouter(prefix="/v1", tags=["events"])
POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
#: an open stream re-checks its token this often: a revoked token stops receiving within it
RECHECK_SECONDS = 0.5
#: while the database does not answer, the stream asks it again this often
OUTAGE_POLL_SECONDS = 1.0


def _reader_session(settings: Settings) -> Session:
    return get_sessionmaker(settings.effective_database_url, read_only=True)()


def _authorise(settings: Settings, secret: str) -> None:
    with _reader_session(settings) as session:
        token = tokens.authenticate(Ctx(session, Outbox(None), settings), secret)
        if not tokens.role_allows(token.role, "reader"):
            raise Forbidden("reading events needs the 'reader' role")


def _still_allowed(settings: Settings, secret: str) -> bool:
    try:
        _authorise(settings, secret)
    except (Unauthorized, Forbidden):
        return False
    return True


def _start_after(settings: Settings, last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.strip().isdigit():
        if int(last_event_id) > DB_INT_MAX:
            raise Invalid(f"Last-Event-ID {last_event_id.strip()!r} is not an event id")
        return int(last_event_id)
    with _reader_session(settings) as session:
        return events.latest_id(Ctx(session, Outbox(None), settings))


async def _stream(
    request: Request, settings: Settings, secret: str, after: int, limit: int | None
) -> AsyncIterator[str]:
    reader = events.EventReader(after)
    sent, quiet_since, checked = 0, time.monotonic(), time.monotonic()
    yield "retry: 1000\n\n"
    while not await request.is_disconnected():
        try:
            if time.monotonic() - checked >= RECHECK_SECONDS:
                if not await run_in_threadpool(_still_allowed, settings, secret):
                    yield "event: revoked\ndata: {}\n\n"  # the token is gone: so is the stream
                    return
                checked = time.monotonic()
            batch = await run_in_threadpool(_poll, reader, settings)
        except (DBAPIError, PoolTimeout) as exc:
            if not retry.is_outage(exc):
                raise
            # ride the outage out: a client that reconnected would get a 503, on which an
            # EventSource gives up for good; this one resumes where it was
            yield ": the database does not answer; waiting for it\n\n"
            await asyncio.sleep(OUTAGE_POLL_SECONDS)
            continue
        for event in batch:
            yield f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
            sent += 1
            if limit is not None and sent >= limit:
                return
        if batch:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _poll(reader: events.EventReader, settings: Settings) -> list[dict[str, Any]]:
    """One short read transaction per poll: the stream holds none (nor a connection) asleep."""
    with _reader_session(settings) as session:
        return reader.poll(Ctx(session, Outbox(None), settings))


@router.get("/events", response_class=StreamingResponse)
async def stream_events(
    request: Request,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
    token: Annotated[
        str | None, Query(description="for EventSource, which cannot send headers")
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="end the stream after N events")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=DB_INT_MAX, description="replay events after this id")
    ] = None,
) -> StreamingResponse:
    secret = token or bearer_secret(request)
    if not secret:
        raise Unauthorized("send 'Authorization: Bearer <token>' or ?token=")
    await run_in_threadpool(_authorise, settings, secret)
    start = (
        after
        if after is not None
        else await run_in_threadpool(_start_after, settings, last_event_id)
    )
    return StreamingResponse(
        _stream(request, settings, secret, start, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
