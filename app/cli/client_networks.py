"""virsh's net-* and net-port-* verbs over /v1/networks."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.client import Verbs, Waiting, print_document, run_action, settle_network
from app.cli.client_api import Api, api_path, read_document
from app.cli.client_output import emit, print_fields, print_table, warn

PAGE = 1000


def _warn_unrealised(network: dict[str, Any]) -> None:
    """A started network whose bridge some host could not make is still active: say where."""
    for realisation in network["status"].get("hosts", []):
        if realisation["state"] in ("failed", "degraded"):
            why = f": {realisation['error']}" if realisation.get("error") else ""
            warn(
                f"network {network['name']!r} is {realisation['state']} on host "
                f"{realisation['host']!r}{why}"
            )


def _started(api: Api, args: argparse.Namespace, network: dict[str, Any], verb: str) -> None:
    """Wait for a network that was just started, then say so as virsh does."""
    name = network["name"]
    network = settle_network(api, network, waiting=Waiting.of(args), label=f"starting {name}")
    _warn_unrealised(network)
    state = network["status"]["state"]
    done = verb if state == "active" else f"{verb}; it is {state} on its hosts"
    emit(args.json, network, f"Network {name} {done}")


def net_define(api: Api, args: argparse.Namespace) -> None:
    document = read_document(args.file)
    network = api.call("POST", "/v1/networks", document=document)
    emit(args.json, network, f"Network {network['name']} defined from {args.file}")


def net_create(api: Api, args: argparse.Namespace) -> None:
    document = read_document(args.file)
    network = api.call("POST", "/v1/networks", params={"start": True}, document=document)
    _started(api, args, network, f"created from {args.file}")


def net_start(api: Api, args: argparse.Namespace) -> None:
    network = api.call("POST", api_path("networks", args.name, "start"))
    _started(api, args, network, "started")


def net_destroy(api: Api, args: argparse.Namespace) -> None:
    path = api_path("networks", args.name, "stop")
    network = api.call("POST", path, params={"force": args.force or None})
    emit(args.json, network, f"Network {args.name} destroyed")


def net_undefine(api: Api, args: argparse.Namespace) -> None:
    network = api.call("DELETE", api_path("networks", args.name))
    emit(args.json, network, f"Network {args.name} has been undefined")


def net_autostart(api: Api, args: argparse.Namespace) -> None:
    path = api_path("networks", args.name, "autostart")
    network = api.call("PUT", path, body={"enabled": not args.disable})
    marked = "unmarked" if args.disable else "marked"
    emit(args.json, network, f"Network {args.name} {marked} as autostarted")


def _all_networks(api: Api) -> list[dict[str, Any]]:
    networks: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", "/v1/networks", params={"limit": PAGE, "offset": len(networks)})
        networks += page["items"]
        if not page["items"] or len(networks) >= page["total"]:
            return networks


def net_list(api: Api, args: argparse.Namespace) -> None:
    networks = _all_networks(api)
    if not args.all:  # virsh lists active networks only; a starting one is on its way there
        networks = [n for n in networks if n["status"]["state"] != "inactive"]
    emit(
        args.json,
        networks,
        lambda: print_table(
            ["Name", "State", "Autostart", "Persistent", "Bridge", "MAC table"],
            [
                [
                    n["name"],
                    n["status"]["state"],
                    n.get("autostart", False),
                    n["status"]["persistent"],
                    n.get("bridge", {}).get("name"),
                    n.get("bridge", {}).get("mac_table_manager", "kernel"),
                ]
                for n in networks
            ],
        ),
    )


def net_info(api: Api, args: argparse.Namespace) -> None:
    network = api.call("GET", api_path("networks", args.name))
    status, bridge = network["status"], network.get("bridge", {})
    fields: list[tuple[str, Any]] = [
        ("Name", network["name"]),
        ("UUID", network.get("uuid")),
        ("Active", status["state"] == "active"),
        ("State", status["state"]),
        ("Persistent", status["persistent"]),
        ("Autostart", network.get("autostart", False)),
        ("Bridge", bridge.get("name")),
        ("MAC table", bridge.get("mac_table_manager", "kernel")),
        ("Forward", network.get("forward", {}).get("mode")),
    ]
    for realisation in status.get("hosts", []):
        error = f" ({realisation['error']})" if realisation.get("error") else ""
        fields.append((f"Host {realisation['host']}", realisation["state"] + error))
    emit(args.json, network, lambda: print_fields(fields))


def net_dumpxml(api: Api, args: argparse.Namespace) -> None:
    params = {"inactive": True} if args.inactive else None
    print_document(api, args, api_path("networks", args.name), params=params)


def _port_operation(port: dict[str, Any]) -> dict[str, Any] | None:
    if not port.get("operation_id"):
        return None
    target = f"port/{port['id']}"
    return {"id": port["operation_id"], "kind": "port.plug", "target": target, "state": "running"}


def net_port_create(api: Api, args: argparse.Namespace) -> None:
    document = read_document(args.file)
    path = api_path("networks", args.network, "ports")
    waiting = Waiting.of(args)
    port = run_action(
        api,
        "POST",
        path,
        document=document,
        label=f"plugging a port into {args.network}",
        waiting=waiting,
        operation_of=_port_operation,
    )
    if waiting.enabled:  # the answer may predate the plug; show the port as it is now
        port = api.call("GET", api_path("networks", args.network, "ports", port["id"]))
    actual = port.get("actual") or {}
    where = f"tap {actual.get('tap')} on bridge {actual.get('bridge')} of host {port['host']}"
    created = "created" if waiting.enabled else f"requested ({port['state']})"
    emit(args.json, port, f"Network port {port['id']} {created} from {args.file}: {where}")


def net_port_list(api: Api, args: argparse.Namespace) -> None:
    ports = api.call("GET", api_path("networks", args.network, "ports"))
    emit(
        args.json,
        ports,
        lambda: print_table(
            ["ID", "Owner", "MAC", "Host", "Tap", "Bridge", "State"],
            [
                [
                    p["id"],
                    p["owner"]["name"],
                    p["mac"],
                    p["host"],
                    (p.get("actual") or {}).get("tap"),
                    (p.get("actual") or {}).get("bridge"),
                    p["state"],
                ]
                for p in ports
            ],
        ),
    )


def net_port_dumpxml(api: Api, args: argparse.Namespace) -> None:
    print_document(api, args, api_path("networks", args.network, "ports", args.port_id))


def net_port_delete(api: Api, args: argparse.Namespace) -> None:
    waiting = Waiting.of(args)
    operation = run_action(
        api,
        "DELETE",
        api_path("networks", args.network, "ports", args.port_id),
        label=f"unplugging port {args.port_id}",
        waiting=waiting,
    )
    deleted = "deleted" if waiting.enabled else f"deletion requested ({operation['state']})"
    emit(args.json, operation, f"Network port {args.port_id} {deleted}")


def net_update(api: Api, args: argparse.Namespace) -> None:
    """virsh net-update NETWORK COMMAND SECTION XML: the XML is a file or the element itself."""
    text = args.xml
    if not text.lstrip().startswith("<"):
        text = read_document(args.xml).content.decode()
    body: dict[str, Any] = {"command": args.command, "section": args.section, "xml": text}
    if args.parent_index is not None:
        body["parent_index"] = args.parent_index
    if args.live:
        body["live"] = True
    if args.config:
        body["config"] = True
    if args.live and not args.config:
        body["config"] = False
    if args.config and not args.live:
        body["live"] = False
    network = api.call("POST", api_path("networks", args.name, "update"), body=body)
    emit(args.json, network, f"Updated network {args.name}")


def net_dhcp_leases(api: Api, args: argparse.Namespace) -> None:
    params = {"mac": args.mac} if args.mac else None
    leases = api.call("GET", api_path("networks", args.name, "dhcp-leases"), params=params)
    emit(
        args.json,
        leases,
        lambda: print_table(
            ["Expiry Time", "MAC address", "Protocol", "IP address", "Hostname", "Host"],
            [
                [
                    lease["expiry"] or "never",
                    lease["mac"] or "-",
                    lease["type"],
                    lease["ip"],
                    lease["hostname"] or "-",
                    lease["host"],
                ]
                for lease in leases
            ],
        ),
    )


def register(verbs: Verbs) -> None:
    file_help = "a network definition: libvirt <network> XML, or JSON (told apart by content)"
    p = verbs.add("net-define", net_define, "define a persistent network from a file")
    p.add_argument("file", metavar="FILE", help=file_help + "; '-' reads stdin")
    p = verbs.add("net-create", net_create, "create and start a transient network", waits=True)
    p.add_argument("file", metavar="FILE", help=file_help + "; '-' reads stdin")
    p = verbs.add("net-start", net_start, "start a defined network", waits=True)
    p.add_argument("name", metavar="NAME")
    p = verbs.add("net-destroy", net_destroy, "stop a network (a transient one is gone after)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="stop even though ports are attached")
    p = verbs.add("net-undefine", net_undefine, "remove a network's persistent definition")
    p.add_argument("name", metavar="NAME")
    p = verbs.add("net-autostart", net_autostart, "start a network when virtnet starts")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--disable", action="store_true", help="do not autostart it")
    p = verbs.add("net-list", net_list, "list active networks (all with --all)")
    p.add_argument("--all", action="store_true", help="inactive networks too")
    p = verbs.add("net-info", net_info, "show a network's state")
    p.add_argument("name", metavar="NAME")
    p = verbs.add("net-dumpxml", net_dumpxml, "print a network as libvirt XML")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--inactive", action="store_true", help="the stored, not the running, one")
    p = verbs.add("net-update", net_update, "change a DHCP host or DNS entry, live or stored")
    p.add_argument("name", metavar="NAME")
    p.add_argument("command", choices=["add-first", "add-last", "modify", "delete"])
    p.add_argument("section", choices=["ip-dhcp-host", "dns-host", "dns-txt", "dns-srv"])
    p.add_argument("xml", metavar="XML", help="the element, or a file holding it")
    p.add_argument("--parent-index", type=int, help="which <ip> (ip-dhcp-host)")
    p.add_argument("--live", action="store_true", help="change the running network")
    p.add_argument("--config", action="store_true", help="change the stored definition")
    p = verbs.add("net-dhcp-leases", net_dhcp_leases, "list the DHCP leases of every host")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mac", help="only this MAC's leases")
    p = verbs.add("net-port-create", net_port_create, "plug a port into a network", waits=True)
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("file", metavar="FILE", help="a port request, JSON (or XML); '-' reads stdin")
    p = verbs.add("net-port-list", net_port_list, "list a network's ports")
    p.add_argument("network", metavar="NETWORK")
    p = verbs.add("net-port-dumpxml", net_port_dumpxml, "print a port as XML")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("port_id", metavar="PORTID")
    p = verbs.add("net-port-delete", net_port_delete, "unplug and remove a port", waits=True)
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("port_id", metavar="PORTID")
