"""Hosts, tokens and the event stream: host-list, token create (over the API), event."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from app.cli.client import Verbs, add_connection_arguments, positive_seconds, run_verb
from app.cli.client_api import Api, ServerEvent
from app.cli.client_output import emit, print_table

RECONNECT_SECONDS = 1.0
TOKEN_CREATE_HELP = (
    "create a token and print it: through the API (POST /v1/tokens, with an admin token) "
    "when --url, --token, VIRTNET_URL or VIRTNET_TOKEN is given, else straight into the "
    "local database (VIRTNET_DATABASE_URL)"
)


def host_list(api: Api, args: argparse.Namespace) -> None:
    hosts = api.call("GET", "/v1/hosts")
    headers = [
        "Name",
        "State",
        "Kernel",
        "VLAN filtering",
        "802.1Q",
        "TUN",
        "NET_ADMIN",
        "Revision",
        "Last seen",
    ]
    rows = [
        [
            h["name"],
            h["state"],
            h["kernel"],
            h["vlan_filtering"],
            h["vlan_8021q"],
            h["tun"],
            h["net_admin"],
            # applied/desired: equal once the host has done everything it was sent
            f"{h.get('applied_revision', 0)}/{h.get('desired_revision', 0)}",
            h["last_seen"],
        ]
        for h in hosts
    ]
    emit(args.json, hosts, lambda: print_table(headers, rows))


def token_create_over_api(api: Api, args: argparse.Namespace) -> None:
    token = api.call("POST", "/v1/tokens", body={"role": args.role, "name": args.name})
    emit(args.json, token, token["token"])


def _subcommand(parser: argparse.ArgumentParser, name: str) -> tuple[Any, argparse.ArgumentParser]:
    """The subparsers action holding ``name`` and its parser (argparse has no public getter)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action, action.choices[name]
    raise LookupError(f"no {name!r} subcommand")


def extend_token_create(verbs: Verbs) -> None:
    """Give the server's `token create` an API mode, chosen by the rule in its help."""
    actions, create = _subcommand(verbs.sub.choices["token"], "create")
    local: Callable[[argparse.Namespace], int] = create.get_default("func")
    over_api = run_verb(token_create_over_api)
    add_connection_arguments(create)
    create.add_argument("--json", action="store_true", help="print the API's JSON (API mode)")
    create.description = TOKEN_CREATE_HELP
    for choice in actions._choices_actions:
        if choice.dest == "create":
            choice.help = "create a token and print it (over the API, or the local database)"

    def token_create(args: argparse.Namespace) -> int:
        if args.url is not None or args.token is not None:
            return over_api(args)
        if args.json:
            create.error("--json needs the API: give --url or --token")
        return local(args)

    create.set_defaults(func=token_create)


def event_line(event: ServerEvent) -> str:
    """One line per event, as `virsh net-event` prints: ``event 'KIND' for SUBJECT: DETAILS``.

    The API's data is ``{"id", "kind", "subject": "network/lab", "time", "data": {...}}``;
    anything else is printed as it came.
    """
    payload = event.data
    if not isinstance(payload, dict) or not isinstance(payload.get("subject"), str):
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return f"event '{event.kind}': {text}"
    kind, (what, _, name) = payload.get("kind", event.kind), payload["subject"].partition("/")
    data = payload.get("data")
    details = data if isinstance(data, dict) else {}
    shown = [
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in details.items()
        if value is not None
    ]
    subject = f"{what} {name}" if name else what
    return f"event '{kind}' for {subject}" + (f": {' '.join(shown)}" if shown else "")


def event(api: Api, args: argparse.Namespace) -> int:
    """Print events from GET /v1/events; reconnect (with Last-Event-ID) when the stream ends."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    last_id: str | None = None
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            print("event loop timed out", file=sys.stderr)
            return 0
        limit = None if args.loop else 1  # the server ends the stream after that many
        for received in api.events(last_id=last_id, limit=limit, read_timeout=left):
            last_id = received.id or last_id
            if args.json:
                line = json.dumps(
                    {"id": received.id, "event": received.kind, "data": received.data}
                )
            else:
                line = event_line(received)
            print(line, flush=True)
            if not args.loop:
                return 0
            if deadline is not None and time.monotonic() >= deadline:
                break
        else:
            time.sleep(RECONNECT_SECONDS if left is None else min(RECONNECT_SECONDS, left))


def register(verbs: Verbs) -> None:
    verbs.add("host-list", host_list, "list the hosts and whether they are up")
    extend_token_create(verbs)
    p = verbs.add("event", event, "print events as they happen (the first one without --loop)")
    p.add_argument("--loop", action="store_true", help="keep printing events until interrupted")
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        default=None,
        help="stop waiting for events after this long",
    )
