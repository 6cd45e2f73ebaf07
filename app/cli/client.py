"""Client verbs of the `virtnet` command: virsh's verbs, over the REST API.

The shared machinery of the verbs; client_commands registers them. Every verb takes
``--url`` (VIRTNET_URL, default http://127.0.0.1:8080), ``--token`` (VIRTNET_TOKEN) and
``--json``; verbs that act on a host also take ``--no-wait`` and ``--timeout``.

Exit codes: 0 success; 1 the API refused (its problem+json detail on stderr), an operation
failed or timed out, or the server cannot be reached; 2 a usage error or a file that cannot
be read as JSON or XML.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.cli.client_api import (
    DEFAULT_URL,
    REPOLL_SECONDS,
    Api,
    ClientError,
    Deadline,
    OperationFailed,
    api_path,
    check_operation,
    poll_until,
    wait_operation,
)
from app.cli.client_output import Progress, print_json, report

#: a verb: the open API connection and the parsed arguments in, an exit code (or None) out
Handler = Callable[[Api, argparse.Namespace], int | None]

EXIT_CODES = (
    "exit codes: 0 done; 1 the API refused, an operation failed or timed out, or the server "
    "cannot be reached; 2 a usage error or a file that cannot be read"
)


def http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL")
    return value


def positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return number


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--url and --token, defaulting to VIRTNET_URL and VIRTNET_TOKEN (None when unset)."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        type=http_url,
        default=os.environ.get("VIRTNET_URL") or None,
        help=f"the virtnet API (VIRTNET_URL; default {DEFAULT_URL})",
    )
    group.add_argument(
        "--token", default=os.environ.get("VIRTNET_TOKEN") or None, help="API token (VIRTNET_TOKEN)"
    )


def _common_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(options)
    options.add_argument("--json", action="store_true", help="print the API's JSON")
    return options


def _wait_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("waiting")
    group.add_argument(
        "--no-wait", action="store_true", help="return at once; the work goes on in the server"
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="give up waiting after this long (exit 1); default: wait until done",
    )
    return options


def run_verb(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Open the connection, run ``handler``, and turn a ClientError into its message and code."""

    def run(args: argparse.Namespace) -> int:
        api = Api(args.url or DEFAULT_URL, args.token)
        try:
            return int(handler(api, args) or 0)
        except OperationFailed as exc:
            if getattr(args, "json", False):
                print_json(exc.result)
            return report(exc)
        except ClientError as exc:
            return report(exc)
        finally:
            api.close()

    return run


class Verbs:
    """Adds client verbs, each with the shared options, to the `virtnet` subparsers."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.common = _common_options()
        self.waiting = _wait_options()

    def add(
        self, name: str, handler: Handler, summary: str, *, waits: bool = False
    ) -> argparse.ArgumentParser:
        parents = [self.common, self.waiting] if waits else [self.common]
        parser: argparse.ArgumentParser = self.sub.add_parser(
            name, help=summary, description=summary, parents=parents, epilog=EXIT_CODES
        )
        parser.set_defaults(func=run_verb(handler))
        return parser


@dataclass(frozen=True)
class Waiting:
    """``--no-wait`` and ``--timeout`` of one verb."""

    enabled: bool
    timeout: float | None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Waiting:
        return cls(enabled=not args.no_wait, timeout=args.timeout)


def run_action(
    api: Api,
    method: str,
    path: str,
    *,
    label: str,
    waiting: Waiting,
    operation_of: Callable[[Any], dict[str, Any] | None] = lambda body: body,
    **request: Any,
) -> Any:
    """Send an action the API finishes later; unless --no-wait, wait for its operation.

    Returns the action's own answer; ``operation_of`` finds the operation in it (None when
    there is nothing to wait for, as with a 204). A failed operation raises OperationFailed.
    """
    if not waiting.enabled:
        answer = api.call(method, path, **request)
        operation = operation_of(answer) if answer is not None else None
        if operation is not None:  # it may have ended already, and not as asked
            check_operation(operation)
        return answer
    deadline = Deadline(waiting.timeout)
    with Progress(label):
        answer = api.call(
            method, path, wait=deadline.next_slice() or 0.0, deadline=deadline, **request
        )
        operation = operation_of(answer) if answer is not None else None
        if operation is not None:
            try:
                wait_operation(api, operation, deadline)
            except KeyboardInterrupt:
                message = f"interrupted: operation {operation['id']} goes on in the server"
                print(f"\n{message}", file=sys.stderr)
                raise
    return answer


def settle_network(
    api: Api, network: dict[str, Any], *, waiting: Waiting, label: str
) -> dict[str, Any]:
    """Wait until a started network is no longer ``starting`` on its hosts."""
    if not waiting.enabled:
        return network
    path = api_path("networks", network["name"])

    def refresh(_: dict[str, Any], budget: float) -> dict[str, Any]:
        time.sleep(min(budget, REPOLL_SECONDS))
        fresh: dict[str, Any] = api.call("GET", path)
        return fresh

    with Progress(label):
        return poll_until(
            network,
            # with no host up there is nothing to wait for: it starts when one registers
            finished=lambda n: n["status"]["state"] != "starting" or not n["status"].get("hosts"),
            refresh=refresh,
            deadline=Deadline(waiting.timeout),
            describe=lambda n: f"the start of network {n['name']!r}",
        )


def print_document(
    api: Api, args: argparse.Namespace, path: str, *, params: dict[str, Any] | None = None
) -> None:
    """The dumpxml verbs: the XML form of a resource, or with --json its JSON form."""
    if args.json:
        print_json(api.call("GET", path, params=params))
        return
    response = api.request("GET", path, params=params, accept="application/xml")
    media_type = response.headers.get("content-type", "").partition(";")[0]
    if not media_type.endswith("xml"):
        raise ClientError(
            f"the server has no XML form of {path} yet (it answered {media_type or 'nothing'})",
            hint="--json prints the JSON form",
        )
    print(response.text, end="" if response.text.endswith("\n") else "\n")
