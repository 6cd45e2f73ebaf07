"""Request bodies: a size cap for every route, and typed documents read from JSON."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem, pydantic_errors
from app.conf import jsondoc
from app.conf.errors import InvalidDocument

MAX_BODY = 1024 * 1024
Model = TypeVar("Model", bound=BaseModel)


class BodyLimit:
    """Refuses bodies over MAX_BODY with 413, whether or not Content-Length announces them.

    The body is read here, before the app sees it (bodies are small), so the refusal is an
    ordinary response rather than an exception escaping from inside the app's body read.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # client went away: let the app see it
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Body too large", f"the body is larger than {self.limit} bytes")
        await response(scope, receive, send)


def _load_json(raw: bytes) -> Any:
    """The body decoded, within the depth limit; refused as a problem otherwise."""
    try:
        return jsondoc.loads(raw)
    except jsondoc.TooDeep as exc:
        errors = [{"field": "(document)", "message": str(exc)}]
        raise InvalidDocument("invalid", str(exc), errors) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidDocument("malformed", f"the body is not valid JSON: {exc}") from None


def _summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])


def parse_json(
    raw: bytes, model: type[Model], *, read_only: tuple[str, ...] = ()
) -> tuple[Model, dict[str, Any]]:
    """The document as ``model``, plus the read-only parts a GET-modify-PUT client sent back."""
    data = _load_json(raw)
    if not isinstance(data, dict):
        raise InvalidDocument("invalid", "the body must be a JSON object")
    extras = {key: data.pop(key) for key in read_only if key in data}
    try:
        # Strict mode: "true" is not a boolean and "5" is not a number.
        return model.model_validate_json(json.dumps(data), strict=True), extras
    except ValidationError as exc:
        errors = pydantic_errors(exc.errors())
        raise InvalidDocument("invalid", _summary(errors), errors) from None


def parse_json_list(raw: bytes, model: type[Model], *, most: int) -> list[Model]:
    """A JSON list of ``model`` documents, all valid or refused together; each error's field
    starts with its item's index (``3.mac``)."""
    data = _load_json(raw)
    if not isinstance(data, list) or not 1 <= len(data) <= most:
        detail = f"the body must be a JSON object or a list of 1 to {most} of them"
        raise InvalidDocument("invalid", detail, [{"field": "(document)", "message": detail}])
    errors: list[dict[str, Any]] = []
    items: list[Model] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            errors.append({"field": str(index), "message": "must be a JSON object"})
            continue
        try:
            items.append(model.model_validate_json(json.dumps(item), strict=True))
        except ValidationError as exc:
            found = [{**e, "loc": (index, *e.get("loc", ()))} for e in exc.errors()]
            errors += pydantic_errors(found)
    if errors:
        raise InvalidDocument("invalid", _summary(errors), errors)
    return items
