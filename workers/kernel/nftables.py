"""virtnet's nftables rules: one ``inet`` table per network, written through libnftables.

Why libnftables (JSON) and not pyroute2: pyroute2 0.9's nftables module builds rules from raw
netlink expressions (payload offsets, registers, NAT attributes by hand) and has no
transaction API for a batch of tables, chains and rules; libnftables (the library under
`nft`, Debian's ``libnftables1``, called here through ctypes, no subprocess) takes the
documented JSON schema and commits a whole batch as one kernel transaction.

A network's table is replaced in one transaction (add, delete, add again with its chains and
rules), so packets see either the old rules or the new ones. Tables are named
``virtnet_<uuid>``: nothing else is ever touched, and a reconcile deletes those no active
network wants.
"""

from __future__ import annotations

import ctypes
import errno
import json
import re
from collections.abc import Sequence
from typing import Any

from .errors import KernelError

PREFIX = "virtnet_"
# A network's table is PREFIX + its uuid in hex; other virtnet tables (the overlay's) are not
# a network's and must survive a network reconcile.
NETWORK_TABLE = re.compile(r"^virtnet_[0-9a-f]{32}$")
FAMILY = "inet"
Json = dict[str, Any]

_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError as exc:
            raise KernelError(
                "libnftables is missing: install Debian's 'nftables' package", errno.ENOENT
            ) from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        _lib = lib
    return _lib


NFT_CTX_OUTPUT_JSON = 1 << 4


def execute(commands: str, *, json_output: bool = False, what: str = "rules") -> str:
    """Run nft commands (text or JSON) as one transaction in this thread's namespace."""
    lib = _library()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise KernelError("libnftables could not create a context", errno.ENOMEM)
    try:
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)
    if rc != 0:
        raise KernelError(f"nftables refused the {what}: {err.strip()}", errno.EINVAL)
    return out


def run(commands: Json | str) -> Json:
    """Run one nft JSON batch (or a command string); returns the JSON output."""
    text = commands if isinstance(commands, str) else json.dumps(commands)
    out = execute(text, json_output=True)
    return json.loads(out) if out.strip() else {}


# -- rule dicts (app.conf.network.firewall) to nftables JSON


def _family_of(net: str) -> str:
    return "ip6" if ":" in net else "ip"


def _prefix(net: str) -> Json | str:
    addr, _, length = net.partition("/")
    full = 128 if ":" in addr else 32
    if not length or int(length) == full:
        return addr
    return {"prefix": {"addr": addr, "len": int(length)}}


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _range(text: str) -> Any:
    low, _, high = text.partition("-")
    if not high or low == high:
        return int(low) if low.isdigit() else low
    return {"range": [int(low), int(high)] if low.isdigit() else [low, high]}


def rule_exprs(rule: Json) -> list[Json]:
    """One rule dict as the expressions of an nftables rule."""
    exprs: list[Json] = []
    if "nfproto" in rule:
        exprs.append(_match({"meta": {"key": "nfproto"}}, rule["nfproto"]))
    if "iif" in rule:
        exprs.append(_match({"meta": {"key": "iifname"}}, rule["iif"]))
    if "oif" in rule:
        exprs.append(_match({"meta": {"key": "oifname"}}, rule["oif"]))
    if "l4proto" in rule:
        exprs.append(_match({"meta": {"key": "l4proto"}}, rule["l4proto"]))
    for key, field, op in (
        ("saddr", "saddr", "=="),
        ("daddr", "daddr", "=="),
        ("not_daddr", "daddr", "!="),
    ):
        if key in rule:
            net = rule[key]
            payload = {"payload": {"protocol": _family_of(net), "field": field}}
            exprs.append(_match(payload, _prefix(net), op))
    if "ct" in rule:
        exprs.append(_match({"ct": {"key": "state"}}, rule["ct"], "in"))
    verdict = rule["verdict"]
    if verdict in ("accept", "return"):
        exprs.append({verdict: None})
    elif verdict == "reject":
        exprs.append({"reject": None})
    elif verdict == "masquerade":
        exprs.append({"masquerade": {"port": _range(rule["ports"])} if "ports" in rule else None})
    elif verdict == "snat":
        body: Json = {"family": "ip", "addr": _range(rule["to"])}
        if "ports" in rule:
            body["port"] = _range(rule["ports"])
        exprs.append({"snat": body})
    else:
        raise KernelError(f"unknown firewall verdict {verdict!r}", errno.EINVAL)
    return exprs


def table_commands(spec: Json) -> list[Json]:
    """The batch that replaces one network's table with ``spec``."""
    table = {"family": FAMILY, "name": spec["table"]}
    cmds: list[Json] = [{"add": {"table": table}}, {"delete": {"table": table}}]
    cmds.append({"add": {"table": table}})
    chains = (
        ("forward", "filter", "forward", 0, spec["forward"]),
        ("postrouting", "nat", "postrouting", 100, spec["postrouting"]),
    )
    for name, kind, hook, prio, rules in chains:
        if not rules:
            continue
        chain = {**table, "name": name, "type": kind, "hook": hook, "prio": prio}
        cmds.append({"add": {"chain": {**chain, "table": spec["table"], "policy": "accept"}}})
        for rule in rules:
            cmds.append(
                {
                    "add": {
                        "rule": {
                            "family": FAMILY,
                            "table": spec["table"],
                            "chain": name,
                            "expr": rule_exprs(rule),
                        }
                    }
                }
            )
    return cmds


def ensure_table(spec: Json) -> None:
    """Install (or replace) one network's rules, atomically. Runs in the host's namespace."""
    run({"nftables": table_commands(spec)})


def delete_tables(names: Sequence[str]) -> None:
    cmds: list[Json] = []
    for name in names:
        if not NETWORK_TABLE.match(name):
            raise KernelError(f"refusing to delete nftables table {name!r}", errno.EPERM)
        table = {"family": FAMILY, "name": name}
        cmds += [{"add": {"table": table}}, {"delete": {"table": table}}]
    if cmds:
        run({"nftables": cmds})


def owned_tables() -> set[str]:
    """Networks' virtnet tables here; none where libnftables is missing (none can exist)."""
    try:
        _library()
    except KernelError:
        return set()
    out = run("list tables")
    return {
        t["table"]["name"]
        for t in out.get("nftables", [])
        if "table" in t
        and t["table"]["family"] == FAMILY
        and NETWORK_TABLE.match(t["table"]["name"])
    }


def set_ip_forwarding(versions: set[int]) -> None:
    """Turn on IPv4/IPv6 forwarding in this thread's namespace (never turns it off)."""
    paths = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}
    for version in sorted(versions):
        with open(paths[version], "r+") as knob:
            if knob.read().strip() != "1":
                knob.seek(0)
                knob.write("1")
