"""Changing a network's DHCP hosts and DNS entries, live and/or in its stored definition.

libvirt's net-update (and a PUT of the running definition): the hosts running the network
get the new desired state; their dnsmasq re-reads its hosts files on SIGHUP (DHCP hosts, DNS
hosts: same PID, leases kept) or, for TXT/SRV records that live in its config, restarts.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.conf.common import compact
from app.conf.network import update as upd
from app.conf.network.model import NetworkDefinition
from app.conf.network.validate import definition_problems
from app.models import Network
from app.services import events, networks, realisation
from app.services.context import Ctx
from app.services.errors import Conflict, Invalid, require_revision


def _entry(req: upd.UpdateRequest) -> upd.Entry:
    model = upd.MODELS[req.section]
    if (req.xml is None) == (req.entry is None):
        raise Invalid("give the entry either as xml (libvirt's element) or as entry (JSON)")
    if req.entry is not None:
        try:
            return model.model_validate(req.entry)
        except ValidationError as exc:
            raise Invalid(
                f"the {req.section} entry is not valid: {exc.errors()[0]['msg']}"
            ) from None
    return _entry_from_xml(req)


def _entry_from_xml(req: upd.UpdateRequest) -> upd.Entry:
    from app.conf.network.xml import network_from_xml

    assert req.xml is not None
    doc = upd.wrap(req.section, req.xml)
    try:
        parsed = network_from_xml(doc.encode())
    except Exception as exc:  # the parser's own message says what is wrong with the element
        detail = getattr(exc, "detail", str(exc))
        raise Invalid(f"the {req.section} element is not valid: {detail}") from None
    if req.section == "ip-dhcp-host":
        hosts = parsed.ips[0].dhcp.hosts if parsed.ips and parsed.ips[0].dhcp else []
        found: list[Any] = hosts
    else:
        field = {"dns-host": "hosts", "dns-txt": "txts", "dns-srv": "srvs"}[req.section]
        found = getattr(parsed.dns, field) if parsed.dns else []
    if len(found) != 1:
        raise Invalid(f"the xml must be exactly one {req.section} element")
    entry: upd.Entry = found[0]
    return entry


def _checked(definition: NetworkDefinition, req: upd.UpdateRequest, entry: upd.Entry) -> dict:
    try:
        new = upd.apply(definition, req, entry)
    except upd.UpdateRefused as exc:
        raise (Conflict if exc.conflict else Invalid)(str(exc)) from None
    problems = definition_problems(new)
    if problems:
        raise Invalid("the network would not be valid after this update", problems=problems)
    return compact(new.model_dump(mode="json"))


def update_section(ctx: Ctx, *, name: str, req: upd.UpdateRequest) -> Network:
    """net-update: by default the running network if active, else the stored definition."""
    network = networks.get(ctx, name, lock=True)
    active = network.state != "inactive"
    live, config = req.live, req.config
    if live is None and config is None:
        live, config = active, not active
    if live and not active:
        raise Conflict(f"network {name!r} is not active: there is no running network to update")
    if config and not network.persistent:
        raise Conflict(f"network {name!r} is transient: it has no stored definition to update")
    entry = _entry(req)
    if live:
        running = NetworkDefinition.model_validate(network.live or network.definition)
        apply_live(ctx, network, _checked(running, req, entry))
    if config:
        stored = NetworkDefinition.model_validate(network.definition)
        network.definition = {**_checked(stored, req, entry), "autostart": network.autostart}
    network.revision += 1
    events.publish(
        ctx, "network.updated", f"network/{name}", section=req.section, command=req.command
    )
    ctx.commit(conflict=f"network {name!r} changed meanwhile; retry")
    return network


def apply_live(ctx: Ctx, network: Network, document: dict[str, Any]) -> None:
    """Make ``document`` the running definition and send it to every host running it."""
    assert network.live is not None
    if upd.needs_restart(network.live, document):
        raise Conflict(
            f"network {network.name!r}: only DHCP hosts, DNS hosts, TXT and SRV records and "
            "an overlay's gateway host change on a running network; stop and start it for the "
            "other changes"
        )
    network.live = document
    network.generation += 1
    realisation.plan_refresh(ctx, network)


def update_live(
    ctx: Ctx, *, name: str, definition: NetworkDefinition, if_match: int | None
) -> Network:
    """PUT ?live=true: the running definition changes (live-updatable parts only)."""
    network = networks.get(ctx, name, lock=True)
    require_revision(f"network {name!r}", network.revision, if_match)
    if network.state == "inactive":
        raise Conflict(f"network {name!r} is not active: PUT without live=true defines it")
    problems = definition_problems(definition)
    if problems:
        raise Invalid("the network definition is not valid", problems=problems)
    document = compact(definition.model_dump(mode="json"))
    running = dict(network.live or {})
    # what define filled in (uuid, bridge, mac) stays as it runs
    for key in ("uuid", "mac"):
        if key in running:
            document.setdefault(key, running[key])
    if running.get("bridge", {}).get("name"):
        document.setdefault("bridge", {}).setdefault("name", running["bridge"]["name"])
    apply_live(ctx, network, {**document, "autostart": running.get("autostart", False)})
    network.revision += 1
    events.publish(ctx, "network.updated", f"network/{name}", live=True)
    ctx.commit(conflict=f"network {name!r} changed meanwhile; retry")
    return network
