"""Each request is one attempt at its transaction: races are run again, outages answered 503.

A request whose transaction lost a race (deadlock, serialization failure, a unique value taken
by a concurrent request) is run again from the start, with its own body, a new session and a
new outbox, a few times with a short jittered pause (``app.services.retry``). What still fails
becomes a problem: 409 for a clash, 503 with Retry-After for a database or broker that does
not answer. A request that committed is never run again, and never answers 5xx: its change
takes effect, so it answers 202 even when reading back the result failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import committed_response, in_doubt_response, storage_problem
from app.db import READ_ONLY
from app.services import retry

log = logging.getLogger("virtnet.api")
#: where a request's writable sessions are listed, in its ``request.state``
SESSIONS = "virtnet_sessions"


def watch(request: Request, session: Session) -> None:
    """Count ``session`` among the request's: once it commits, the request is not re-run."""
    sessions = getattr(request.state, SESSIONS, None)
    if sessions is not None and not session.info.get(READ_ONLY):
        sessions.append(session)


def close(session: Session) -> None:
    """End the request's session. It runs after the answer was sent: a connection the
    database dropped meanwhile (its rollback fails) must not break the client's connection."""
    try:
        session.close()
    except (DBAPIError, PoolTimeout) as exc:
        if not retry.is_outage(exc):
            raise
        log.warning("closing a session whose database went away: %s", exc)


class Transactions:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, first = await _read_body(receive)
        state = dict(scope.get("state") or {})
        where = (scope["method"], scope["path"])
        for attempt in range(retry.ATTEMPTS):
            sessions: list[Session] = []
            scope["state"] = {**state, SESSIONS: sessions}
            started = False

            async def note_start(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self.app(scope, _replay(body, first, receive), note_start)
                return
            except Exception as exc:
                if started:
                    raise
                if any(retry.commits(s) for s in sessions):
                    log.exception("%s %s committed, then failed", *where)
                    await committed_response(exc)(scope, receive, send)
                    return
                if any(retry.in_doubt(s, exc) for s in sessions):
                    log.warning("%s %s lost the database while committing: %s", *where, exc)
                    await in_doubt_response()(scope, receive, send)
                    return
                if retry.retryable(exc, attempt) and attempt < retry.ATTEMPTS - 1:
                    log.info("%s %s lost a race or a dead connection: %s", *where, exc)
                    await asyncio.sleep(retry.pause(attempt))
                    continue
                response = storage_problem(exc)
                if response is None:
                    raise
                await response(scope, receive, send)
                return


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, so each attempt can read it; or the first message that is not one."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), None


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        if first is not None:
            return first
        message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
        return message

    return replay
