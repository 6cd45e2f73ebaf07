"""HTTP access to the virtnet API for the client verbs.

One request helper (``Api.call``), one waiter for what the API finishes later
(``poll_until``), the Server-Sent Events reader, and the errors the verbs turn into exit
codes. Only the standard library and httpx: a client verb never loads the server's modules.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
CONNECT_SECONDS = 5.0
READ_SECONDS = 30.0
#: past a --timeout, how long an answer already on its way may still take to arrive
ANSWER_GRACE_SECONDS = 3.0
#: the longest ``?wait=`` one request asks for; the API accepts up to 300
LONG_POLL_SECONDS = 10.0
#: how often a state without a long-poll endpoint (a starting network) is read again
REPOLL_SECONDS = 0.2
FINISHED = frozenset({"succeeded", "failed", "refused"})
T = TypeVar("T")


class ClientError(Exception):
    """Anything that ends a verb with a message on stderr and a non-zero exit code."""

    exit_code = 1

    def __init__(
        self, message: str, *, details: Sequence[str] = (), hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.details, self.hint = message, list(details), hint


class BadInput(ClientError):
    """A file that cannot be read or is neither JSON nor XML: a usage error, like argparse's."""

    exit_code = 2


class Unreachable(ClientError):
    """No HTTP answer: nothing listens at the URL, DNS failed, or the server hung up."""


class ApiError(ClientError):
    """The API answered with an error status; ``problem`` is its problem+json body."""

    def __init__(
        self, status: int, message: str, problem: Mapping[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.status, self.problem = status, dict(problem)


class OperationFailed(ClientError):
    """The operation finished in state ``failed``; ``result`` is what the verb prints."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class StillRunning(ClientError):
    """``--timeout`` passed before the operation finished; it goes on in the server."""


def api_path(*segments: str) -> str:
    """``/v1/...`` with each user-given segment quoted, so a name cannot reach another route."""
    return "/v1/" + "/".join(quote(s, safe=":") for s in segments)


@dataclass(frozen=True)
class Document:
    """A definition read from a file: JSON or libvirt XML, told apart by its content."""

    path: str
    content: bytes
    is_xml: bool

    @property
    def content_type(self) -> str:
        return "application/xml" if self.is_xml else "application/json"


def read_document(path: str) -> Document:
    """The file at ``path`` (``-`` for stdin); XML when it starts with '<', else a JSON object."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    text = raw.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise BadInput(f"cannot read {path}: the file is empty")
    if text.startswith(b"<"):
        return Document(path, raw, is_xml=True)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadInput(
            f"cannot read {path}: it is neither XML (starting with '<') nor valid JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise BadInput(f"cannot read {path}: the JSON document must be an object")
    return Document(path, raw, is_xml=False)


def _problem_lines(problem: Mapping[str, Any], detail: str) -> list[str]:
    """Per-field errors that the one-line detail does not already say in full."""
    lines = []
    for error in problem.get("errors") or []:
        if not isinstance(error, dict):
            continue
        where = str(error.get("field", "(document)"))
        if error.get("line"):
            where += f" (line {error['line']})"
        lines.append(f"{where}: {error.get('message', 'invalid')}")
    return [] if all(line in detail for line in lines) else lines


class Api:
    """A connection to one virtnet API; every verb's requests go through ``call``."""

    def __init__(self, url: str, token: str | None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.has_token = bool(token)
        headers = {"User-Agent": "virtnet-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, headers=headers)

    def close(self) -> None:
        self._client.close()

    def _timeout(self, read: float | None) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(read, connect=CONNECT_SECONDS)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        document: Document | None = None,
        accept: str = "application/json",
        wait: float = 0.0,
        deadline: Deadline | None = None,
    ) -> httpx.Response:
        """Send one request; an error status raises ApiError, no answer raises Unreachable.

        With a ``deadline`` that has a timeout, the answer is awaited no longer than what is
        left of it (and a moment for the answer to travel): no answer by then is StillRunning.
        """
        import httpx

        headers = {"Accept": accept}
        content: bytes | None = None
        if document is not None:
            content, headers["Content-Type"] = document.content, document.content_type
        elif body is not None:
            content, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if wait:
            params = {**(params or {}), "wait": round(wait, 3)}
        try:
            response = self._client.request(
                method,
                path,
                params=_query(params),
                content=content,
                headers=headers,
                timeout=self._timeout(_read_seconds(wait, deadline)),
            )
        except httpx.InvalidURL as exc:
            raise BadInput(f"cannot use the URL {self.url}{path}: {exc}") from None
        except httpx.TimeoutException:
            if deadline is not None and deadline.timeout is not None:
                raise StillRunning(
                    f"gave up waiting after {deadline.timeout:g} s: the virtnet API at "
                    f"{self.url} did not answer {method} {path} in time; what was asked may "
                    "still happen in the server"
                ) from None
            raise Unreachable(
                f"the virtnet API at {self.url} did not answer {method} {path} "
                f"within {READ_SECONDS + wait:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        if response.is_error:
            raise self.error(response, sent_xml=document is not None and document.is_xml)
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request``, returning the decoded JSON body (None for an empty one, as for 204)."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{method} {path} at {self.url} answered something that is not JSON; "
                "is --url a virtnet API?"
            ) from None

    def unreachable(self, exc: Exception) -> Unreachable:
        return Unreachable(
            f"cannot reach the virtnet API at {self.url}: {exc}",
            hint="is the server running? Set --url or VIRTNET_URL to where it listens",
        )

    def error(self, response: httpx.Response, *, sent_xml: bool = False) -> ApiError:
        """The API's problem+json as an exception: its detail, then its per-field errors."""
        try:
            problem = response.json()
        except ValueError:
            problem = None
        request = response.request
        if isinstance(problem, dict) and problem.get("detail"):
            detail = str(problem["detail"])
        else:
            detail = (
                f"{request.method} {request.url.path} answered "
                f"{response.status_code} {response.reason_phrase}"
            )
            problem = {"status": response.status_code, "detail": detail}
        hint = None
        if response.status_code == 401 and not self.has_token:
            hint = "pass --token or set VIRTNET_TOKEN"
        elif sent_xml and response.status_code in (400, 415):
            hint = "this server does not read XML for this request yet; send the JSON form"
        return ApiError(
            response.status_code,
            detail,
            problem,
            details=_problem_lines(problem, detail),
            hint=hint,
        )

    def events(
        self, *, last_id: str | None, limit: int | None, read_timeout: float | None
    ) -> Iterator[ServerEvent]:
        """GET /v1/events as Server-Sent Events, one ServerEvent at a time until it ends."""
        import httpx

        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with self._client.stream(
                "GET",
                "/v1/events",
                params=_query({"limit": limit}),
                headers=headers,
                timeout=self._timeout(read_timeout),
            ) as response:
                if response.is_error:
                    response.read()
                    if response.status_code == 404:
                        raise ClientError(
                            f"the virtnet API at {self.url} has no event stream "
                            "(GET /v1/events answered 404); it needs a newer virtnet server"
                        )
                    raise self.error(response)
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise ClientError(
                        "GET /v1/events did not answer with an event stream (text/event-stream)"
                    )
                yield from parse_events(response.iter_lines())
        except httpx.ReadTimeout:
            return
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as the API reads them: booleans as true/false, None left out."""
    if not params:
        return None
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }


@dataclass
class ServerEvent:
    """One Server-Sent Event: its ``id:``, ``event:`` and the JSON (or text) of its ``data:``."""

    kind: str = "message"
    id: str | None = None
    data_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> Any:
        text = "\n".join(self.data_lines)
        try:
            return json.loads(text)
        except ValueError:
            return text


def parse_events(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """The events of an SSE stream (WHATWG rules: comments skipped, a blank line dispatches)."""
    event = ServerEvent()
    for line in lines:
        if not line:
            if event.data_lines:
                yield event
            event = ServerEvent(id=event.id)  # the last id carries over, as in EventSource
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event.kind = value or "message"
        elif name == "data":
            event.data_lines.append(value)
        elif name == "id" and "\0" not in value:
            event.id = value
        # a comment (empty name, a keep-alive) or an unknown field is ignored


def _read_seconds(wait: float, deadline: Deadline | None) -> float:
    """How long to wait for an answer: a long poll's ``wait`` and then READ_SECONDS, never
    past the caller's deadline (plus ANSWER_GRACE_SECONDS for the answer to arrive)."""
    read = READ_SECONDS + wait
    if deadline is not None and (left := deadline.left()) is not None:
        read = min(read, max(left, wait) + ANSWER_GRACE_SECONDS)
    return read


class Deadline:
    """How long a verb still waits; ``None`` waits for as long as it takes."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.started = time.monotonic()

    def left(self) -> float | None:
        """Seconds still to wait (at least 0), or None with no timeout."""
        if self.timeout is None:
            return None
        return max(0.0, self.timeout - (time.monotonic() - self.started))

    def next_slice(self) -> float | None:
        """Seconds for the next long poll, or None when the time is up."""
        if self.timeout is None:
            return LONG_POLL_SECONDS
        left = self.timeout - (time.monotonic() - self.started)
        return min(left, LONG_POLL_SECONDS) if left > 0 else None


def poll_until(
    current: T,
    *,
    finished: Callable[[T], bool],
    refresh: Callable[[T, float], T],
    deadline: Deadline,
    describe: Callable[[T], str],
) -> T:
    """Refresh ``current`` (each refresh may block up to the slice it gets) until finished."""
    while not finished(current):
        seconds = deadline.next_slice()
        if seconds is None:
            raise StillRunning(
                f"gave up waiting after {deadline.timeout:g} s: {describe(current)} is still "
                "running; it goes on in the server"
            )
        current = refresh(current, seconds)
    return current


def wait_operation(api: Api, operation: Mapping[str, Any], deadline: Deadline) -> dict[str, Any]:
    """Long-poll GET /v1/operations/{id} until it finished; a failed one raises."""

    def refresh(op: dict[str, Any], seconds: float) -> dict[str, Any]:
        path = api_path("operations", op["id"])
        result: dict[str, Any] = api.call("GET", path, wait=seconds, deadline=deadline)
        return result

    def describe(op: Mapping[str, Any]) -> str:
        return f"operation {op['id']} ({op['kind']} of {op['target']})"

    done = poll_until(
        dict(operation),
        finished=lambda op: op["state"] in FINISHED,
        refresh=refresh,
        deadline=deadline,
        describe=describe,
    )
    return check_operation(done)


def check_operation(op: dict[str, Any]) -> dict[str, Any]:
    """``op`` unless it ended without doing what was asked: then OperationFailed."""
    if op.get("state") in ("failed", "refused"):
        what = f"operation {op['id']} ({op.get('kind')} of {op.get('target')})"
        raise OperationFailed(f"{what} {op['state']}: {op.get('error') or 'no reason given'}", op)
    return op
