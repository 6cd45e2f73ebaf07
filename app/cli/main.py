"""The `virtnet` command: server commands here, client verbs in app.cli.client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.config_basics import ConfigError, parse_listen

if TYPE_CHECKING:
    from app.config import Settings


def get_settings() -> Settings:
    """Settings are loaded (pydantic) only by commands that need them: client verbs stay fast."""
    from app.config import get_settings as load

    return load()


def _db_upgrade(_: argparse.Namespace) -> int:
    from app.services.schema import upgrade_database

    upgrade_database(get_settings())
    print("database is at the latest schema")
    return 0


def _api(args: argparse.Namespace) -> int:
    from app.cli.server import run_api

    run_api(get_settings(), args.listen)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from app.cli.server import serve

    return serve(get_settings(), args.listen)


def _worker(args: argparse.Namespace) -> int:
    from workers.main import run_host_worker

    return run_host_worker(get_settings(), host=args.host, netns=args.netns, underlay=args.underlay)


def _control_worker(_: argparse.Namespace) -> int:
    from app.control import run_control_worker

    return run_control_worker(get_settings())


def _token_create(args: argparse.Namespace) -> int:
    from app.cli.server import create_token

    print(create_token(get_settings(), role=args.role, name=args.name))
    return 0


def _host_key(args: argparse.Namespace) -> int:
    from app.config import ConfigError
    from app.host_identity import host_key, report_secret

    secret = report_secret(get_settings())
    if secret is None:
        raise ConfigError("no report secret: set VIRTNET_REPORT_SECRET or VIRTNET_STATE_DIR")
    print(host_key(secret, args.name))
    return 0


def _listen(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("api", help="run the REST API alone")
    p.add_argument("--listen", type=_listen, default=None, help="HOST:PORT (127.0.0.1:8080)")
    p.set_defaults(func=_api)

    p = sub.add_parser("serve", help="migrations, API, control worker and a host worker")
    p.add_argument("--listen", type=_listen, default=None, help="HOST:PORT (127.0.0.1:8080)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dbsub.add_parser("upgrade", help="apply migrations").set_defaults(func=_db_upgrade)

    p = sub.add_parser("worker", help="run the host worker for one host")
    p.add_argument("--host", default=None, help="host name (VIRTNET_HOST_NAME, else hostname)")
    p.add_argument("--netns", default=None, help="work inside this network namespace")
    p.add_argument(
        "--underlay",
        default=None,
        metavar="ADDRESS",
        help="this host's address for overlay (VXLAN) networks (VIRTNET_UNDERLAY)",
    )
    p.set_defaults(func=_worker)

    p = sub.add_parser("control-worker", help="run the worker that records host reports")
    p.set_defaults(func=_control_worker)

    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = tsub.add_parser("create", help="create a token and print it (local database access)")
    t.add_argument("--role", choices=["reader", "operator", "admin"], default="operator")
    t.add_argument("--name", default="")
    t.set_defaults(func=_token_create)
    p = sub.add_parser("host-key", help="print the key a host worker signs its reports with")
    p.add_argument("name", help="the host's name (its worker's --host)")
    p.set_defaults(func=_host_key)

    from app.cli.client_commands import add_commands  # no server modules needed

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"virtnet: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
