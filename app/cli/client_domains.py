"""virsh's domain verbs over /v1/domains: define, lifecycle, interfaces, listings."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from app.cli import qemu
from app.cli.client import Verbs, Waiting, print_document, run_action
from app.cli.client_api import Api, api_path, read_document
from app.cli.client_output import emit, print_table

VHOST_NET = "/dev/vhost-net"


@dataclass(frozen=True)
class Lifecycle:
    """One lifecycle verb: the action it POSTs and the words it prints."""

    verb: str
    endpoint: str
    doing: str
    done: str
    help: str


LIFECYCLE = (
    Lifecycle("start", "start", "starting", "started", "start a domain: plug its interfaces"),
    Lifecycle("shutdown", "stop", "shutting down", "shut down", "stop a domain (as destroy)"),
    Lifecycle("destroy", "stop", "destroying", "destroyed", "stop a domain: unplug its interfaces"),
    Lifecycle("suspend", "suspend", "suspending", "suspended", "pause a domain (FDB entries out)"),
    Lifecycle("resume", "resume", "resuming", "resumed", "resume a paused domain"),
)


def _finished(waiting: Waiting, done: str, operation: dict[str, Any] | None) -> str:
    if waiting.enabled or operation is None:
        return done
    return f"{done}: requested, operation {operation['id']} is {operation['state']}"


def lifecycle(api: Api, args: argparse.Namespace) -> None:
    action: Lifecycle = args.lifecycle
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "POST",
        api_path("domains", args.name, action.endpoint),
        params={"force": getattr(args, "force", False) or None},
        label=f"{action.doing} domain {args.name!r}",
        waiting=waiting,
    )
    emit(args.json, operation, f"Domain '{args.name}' {_finished(waiting, action.done, operation)}")


def define(api: Api, args: argparse.Namespace) -> None:
    domain = api.call("POST", "/v1/domains", document=read_document(args.file))
    emit(args.json, domain, f"Domain '{domain['name']}' defined from {args.file}")


def undefine(api: Api, args: argparse.Namespace) -> None:
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "DELETE",
        api_path("domains", args.name),
        params={"force": args.force or None},
        label=f"undefining domain {args.name!r}",
        waiting=waiting,
    )
    done = _finished(waiting, "has been undefined", operation)
    emit(args.json, operation, f"Domain '{args.name}' {done}")


def attach_interface(api: Api, args: argparse.Namespace) -> None:
    interface: dict[str, Any] = {"type": args.type, "source": {args.type: args.source}}
    optional = {"mac": args.mac, "model": args.model, "target": args.target}
    interface.update({key: value for key, value in optional.items() if value is not None})
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "POST",
        api_path("domains", args.name, "interfaces"),
        body=interface,
        label=f"attaching an interface to {args.name!r}",
        waiting=waiting,
    )
    emit(
        args.json, operation, f"Interface {_finished(waiting, 'attached successfully', operation)}"
    )


def detach_interface(api: Api, args: argparse.Namespace) -> None:
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "DELETE",
        api_path("domains", args.name, "interfaces", args.mac),
        params={"force": args.force or None},
        label=f"detaching {args.mac} from {args.name!r}",
        waiting=waiting,
    )
    emit(
        args.json, operation, f"Interface {_finished(waiting, 'detached successfully', operation)}"
    )


def migrate(api: Api, args: argparse.Namespace) -> None:
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "POST",
        api_path("domains", args.name, "migrate"),
        body={"host": args.host},
        label=f"migrating domain {args.name!r} to {args.host!r}",
        waiting=waiting,
    )
    result = (operation or {}).get("result") or {}
    done = f"migrated to {args.host}"
    if waiting.enabled and "switchover_seconds" in result:
        done += f" (switchover {result['switchover_seconds'] * 1000:.1f} ms)"
    emit(args.json, operation, f"Domain '{args.name}' {_finished(waiting, done, operation)}")


def domiflist(api: Api, args: argparse.Namespace) -> None:
    interfaces = api.call("GET", api_path("domains", args.name))["interfaces"]

    def row(interface: dict[str, Any]) -> list[Any]:
        live = interface.get("actual") or {}
        source = interface.get("source", {})
        return [
            live.get("tap") or interface.get("target"),
            interface["type"],
            source.get("network") or source.get("bridge"),
            interface.get("model"),
            interface.get("mac"),
            live.get("bridge"),
            live.get("mac_table_manager"),
            live.get("state"),
            guest_side(live),
        ]

    headers = [
        *("Interface", "Type", "Source", "Model", "MAC", "Bridge", "MAC table", "State"),
        "Guest side",
    ]
    emit(args.json, interfaces, lambda: print_table(headers, [row(i) for i in interfaces]))


def guest_side(live: dict[str, Any]) -> str | None:
    """How the guest reaches the port: a container's interface in its namespace, or the
    tap a hypervisor opens (see qemu-args)."""
    if live.get("device") == "veth":
        return f"{live.get('guest_ifname')} in netns {live.get('netns')}"
    if live.get("device") == "tap":
        queues = live.get("queues") or 1
        return "tap" + (f", {queues} queues" if queues > 1 else "")
    return None


def qemu_args(api: Api, args: argparse.Namespace) -> None:
    domain = api.call("GET", api_path("domains", args.name))
    vhost = {"on": True, "off": False}.get(args.vhost, os.path.exists(VHOST_NET))
    lines = qemu.arguments(domain, vhost=vhost)
    emit(args.json, [word for line in lines for word in line], lambda: _print_lines(lines))


def _print_lines(lines: list[list[str]]) -> None:
    for line in lines:
        print(" ".join(line))


def dumpxml(api: Api, args: argparse.Namespace) -> None:
    print_document(api, args, api_path("domains", args.name))


def domain_list(api: Api, args: argparse.Namespace) -> None:
    domains = api.call("GET", "/v1/domains")
    if not args.all:  # virsh lists running (and paused) domains only
        domains = [d for d in domains if d["status"]["state"] != "shut_off"]
    rows = [
        [d["name"], d["status"]["state"], d["host"], len(d.get("interfaces", []))] for d in domains
    ]
    emit(args.json, domains, lambda: print_table(["Name", "State", "Host", "Interfaces"], rows))


def register(verbs: Verbs) -> None:
    p = verbs.add("define", define, "define a domain from a file")
    p.add_argument("file", metavar="FILE", help="a domain definition, JSON; '-' reads stdin")
    p = verbs.add("undefine", undefine, "remove a domain's definition", waits=True)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="stop a running domain first")
    for action in LIFECYCLE:
        p = verbs.add(action.verb, lifecycle, action.help, waits=True)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(lifecycle=action)
        if action.endpoint == "stop":
            p.add_argument(
                "--force", action="store_true", help="also remove taps a hypervisor holds open"
            )
    p = verbs.add("attach-interface", attach_interface, "hot-plug an interface", waits=True)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--type", required=True, choices=["network", "bridge"])
    p.add_argument("--source", required=True, help="the network's or the bridge's name")
    p.add_argument("--mac", help="default: a random 52:54:00:xx:xx:xx")
    p.add_argument("--model", help="the guest's NIC model, e.g. virtio")
    p.add_argument("--target", help="the tap device's name (default: vnetN)")
    p = verbs.add("detach-interface", detach_interface, "hot-unplug an interface", waits=True)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mac", required=True, help="the interface's MAC address")
    p.add_argument("--force", action="store_true", help="even if a hypervisor holds its tap")
    p = verbs.add("migrate", migrate, "move a running domain's ports to another host", waits=True)
    p.add_argument("name", metavar="NAME")
    p.add_argument("host", metavar="HOST", help="the host it moves to")
    p = verbs.add("domiflist", domiflist, "list a domain's interfaces and their devices")
    p.add_argument("name", metavar="NAME")
    p = verbs.add(
        "qemu-args", qemu_args, "print the QEMU -netdev/-device arguments of a running domain"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--vhost",
        choices=["auto", "on", "off"],
        default="auto",
        help=f"vhost=on for every tap (auto: when {VHOST_NET} exists here)",
    )
    p = verbs.add("dumpxml", dumpxml, "print a domain as XML")
    p.add_argument("name", metavar="NAME")
    p = verbs.add("list", domain_list, "list running domains (all with --all)")
    p.add_argument("--all", action="store_true", help="shut-off domains too")
