"""The OpenAPI document lists every status code and content type each operation can answer.

FastAPI documents only the success answer and 422. The rest follow from what an operation
takes, so they are added here in one pass, from the same rules the API applies:

- every /v1 operation but /v1/health wants a token: 401, and 403 for a role too weak;
- a path parameter names something that may not exist: 404;
- a body may be malformed (400), too large (413), or invalid (422);
- a change may conflict with the current state (409); a PUT with If-Match may be stale (412);
- an action with ``?wait`` answers 202 while its operation runs, 200 once it has finished;
- a definition can be read and written as libvirt XML (``Accept``/``Content-Type``);
- every error is ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
XML = "application/xml"

#: operations whose successful answer is libvirt XML when the client asks for it
XML_ANSWERS = {
    ("post", "/v1/networks"),
    ("get", "/v1/networks/{name}"),
    ("put", "/v1/networks/{name}"),
    ("post", "/v1/networks/{name}/ports"),
    ("get", "/v1/networks/{name}/ports/{port_id}"),
    ("post", "/v1/domains"),
    ("get", "/v1/domains/{name}"),
    ("put", "/v1/domains/{name}"),
}
#: answers beyond the one the route declares
OTHER_ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    # undefining an active network leaves it running, transient: its view
    ("delete", "/v1/networks/{name}"): {"200": "the network, now transient"},
    # stopping a transient network removes it
    ("post", "/v1/networks/{name}/stop"): {"204": "the transient network is gone"},
    ("delete", "/v1/domains/{name}"): {"202": "the domain is stopped first (?force)"},
}
ERRORS = {
    400: "Malformed request: the body is not JSON or XML virtnet can read",
    401: "No token, or one virtnet does not know",
    403: "The token's role does not allow this",
    404: "Not found",
    409: "Conflicts with the current state",
    412: "If-Match names an older revision",
    413: "The body is larger than 1 MiB",
    422: "Invalid request: see errors[] for each field",
    503: "The database (or broker) does not answer: nothing was changed; retry after Retry-After",
}
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "line": {"type": "integer"},
                },
            },
        },
        "errors_omitted": {"type": "integer"},
    },
}


def document_answers(schema: dict[str, Any]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            _document(method, path, op)


def _document(method: str, path: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    params = {p["name"]: p["in"] for p in op.get("parameters", [])}
    codes = {422}
    if path != "/v1/health":  # health answers 503 with its own body
        codes |= {401, 403, 503}
    if "path" in params.values():
        codes.add(404)
    if "requestBody" in op:
        codes |= {400, 413}
    if method in ("post", "put", "delete"):
        codes.add(409)
    if "if-match" in params:
        codes.add(412)
    for status in sorted(codes):
        responses[str(status)] = {
            "description": ERRORS[status],
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    success = [c for c in responses if c.startswith("2")]
    if "wait" in params:
        for code, why in (("200", "finished within ?wait"), ("202", "still running")):
            responses.setdefault(code, _like(responses[success[0]], why))
    for code, why in OTHER_ANSWERS.get((method, path), {}).items():
        responses.setdefault(
            code, {"description": why} if code == "204" else _like(responses[success[0]], why)
        )
    if (method, path) in XML_ANSWERS:
        for code, answer in responses.items():
            if code.startswith("2") and "content" in answer:
                answer["content"][XML] = {"schema": {"type": "string"}}


def _like(answer: dict[str, Any], description: str) -> dict[str, Any]:
    content = answer.get("content") or {"application/json": {"schema": {}}}
    return {"description": description, "content": dict(content)}
