"""Hypothesis strategies for valid network definitions, as JSON documents.

They cover every part of the model in every forward mode, staying inside the rules of
app.conf.network.validate (addresses from disjoint subnets, gateways on the network, one default
portgroup, ...) so that each example is a definition virtnet accepts.
"""

from __future__ import annotations

import ipaddress
import string
from typing import Any

from hypothesis import strategies as st
from lxml import etree

from app.conf.ifname import ifname_problem
from app.conf.network.model import LEASE_UNIT_SECONDS

Doc = dict[str, Any]
MODES = ("none", "nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev")
OWNS_BRIDGE = ("none", "nat", "route", "open")
SERVICE = string.ascii_letters + string.digits + "_-+/*"


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


#: text XML can carry, including the awkward parts: quotes, <, &, tabs, newlines, CR
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\t\n\r<>&'\""),
    max_size=12,
)
line = text.map(lambda s: s.replace("\n", " "))
word = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
dns_name = st.lists(word, min_size=1, max_size=3).map(".".join)
#: names the kernel takes (dev_valid_name, and not one of the reserved "all", "default", "lo")
ifname = st.text(string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=15).filter(
    lambda s: ifname_problem(s) is None
)
name = st.from_regex(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,20}", fullmatch=True)
ipv4 = st.ip_addresses(v=4).map(str)
uuids = st.uuids().map(str)
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def macs(draw: st.DrawFn) -> str:
    octets = draw(st.lists(st.integers(0, 255), min_size=6, max_size=6))
    octets[0] &= 0xFE
    octets[5] |= 1  # never all-zero
    mac = ":".join(f"{o:02x}" for o in octets)
    return mac.upper() if draw(st.booleans()) else mac


@st.composite
def metadata_elements(draw: st.DrawFn) -> list[str]:
    count = draw(st.integers(1, 3))
    out = []
    for i in range(count):
        ns = f"urn:test:{i}"
        element = etree.Element(
            f"{{{ns}}}{draw(word).lstrip(string.digits) or 'x'}", nsmap={f"p{i}": ns}
        )
        element.set("v", draw(text))
        element.text = draw(maybe(text))
        for _ in range(draw(st.integers(0, 2))):
            child = etree.SubElement(element, f"{{{ns}}}c")
            child.text = draw(maybe(text))
        out.append(etree.tostring(element, encoding="unicode"))
    return out


@st.composite
def leases(draw: st.DrawFn) -> Doc:
    kind = draw(st.sampled_from(["none", "infinite", *LEASE_UNIT_SECONDS]))
    if kind == "none":
        return {}
    if kind == "infinite":
        return {"lease": 0}
    seconds = LEASE_UNIT_SECONDS[kind]
    lease = draw(st.integers(max(1, 120 // seconds + (120 % seconds > 0)), 10**6)) * seconds
    return {"lease": lease, "lease_unit": draw(st.sampled_from([kind, None]))}


@st.composite
def ip_configs(draw: st.DrawFn, index: int) -> Doc:
    v6 = draw(st.booleans())
    if v6:
        net = ipaddress.ip_network(f"fd00:{index}::/64")
        ip: Doc = {"address": str(net[1]), "prefix": 64}
    else:
        net = ipaddress.ip_network(f"10.{index}.0.0/16")
        ip = {"address": str(net[1])}
        ip.update(draw(st.sampled_from([{"prefix": 16}, {"netmask": "255.255.0.0"}, {}])))
        ip["tftp_root"] = draw(maybe(text))
    ip["family"] = draw(maybe(st.just("ipv6" if v6 else "ipv4")))
    ip["local_ptr"] = draw(maybe(st.booleans()))
    if "prefix" in ip or "netmask" in ip:
        ip["dhcp"] = draw(maybe(dhcps(net, v6)))
    return ip


def _unique_set(values: list[Any]) -> bool:
    given = [v for v in values if v is not None]
    return len(given) == len(set(given))


@st.composite
def dhcps(draw: st.DrawFn, net: Any, v6: bool) -> Doc:
    ranges = []
    for j in range(draw(st.integers(0, 2))):
        start = net[256 * (j + 1)]
        end = start + draw(st.integers(0, 200))
        ranges.append({"start": str(start), "end": str(end), **draw(leases())})
    hosts = []
    count = draw(st.integers(0, 2))
    # a network's DHCP hosts are unique by MAC, client id and name, as libvirt requires
    names = draw(st.lists(maybe(word), min_size=count, max_size=count).filter(_unique_set))
    ident = st.from_regex(r"[0-9a-f]{1,2}(:[0-9a-f]{1,2}){3,8}", fullmatch=True) if v6 else macs()
    idents = draw(st.lists(ident, min_size=count, max_size=count, unique_by=str.lower))
    for j in range(count):
        host: Doc = {"ip": str(net[1000 + j]), "name": names[j], **draw(leases())}
        host["id" if v6 else "mac"] = idents[j]
        hosts.append(host)
    dhcp: Doc = {"ranges": ranges, "hosts": hosts}
    if not v6 and (ranges or hosts) and draw(st.booleans()):
        dhcp["bootp"] = {"file": draw(text), "server": draw(maybe(ipv4))}
    return dhcp


@st.composite
def routes(draw: st.DrawFn, ips: list[Doc]) -> list[Doc]:
    out = []
    for j, ip in enumerate(ips):
        if not draw(st.booleans()):
            continue
        v6 = ":" in ip["address"]
        gateway = str(ipaddress.ip_address(ip["address"]) + 1)
        route = {"address": f"fd50:{j}::" if v6 else f"172.16.{j}.0", "gateway": gateway}
        route.update(
            {"prefix": 64}
            if v6
            else draw(st.sampled_from([{"prefix": 24}, {"netmask": "255.255.255.0"}]))
        )
        route["family"] = draw(maybe(st.just("ipv6" if v6 else "ipv4")))
        route["metric"] = draw(maybe(st.integers(1, 10_000)))
        out.append(route)
    return out


@st.composite
def forwards(draw: st.DrawFn, mode: str) -> Doc:
    forward: Doc = {"mode": mode}
    devices = st.lists(ifname, unique=True, min_size=1, max_size=3)
    if mode in ("nat", "route"):
        forward["dev"] = draw(maybe(ifname))
    if mode == "nat" and draw(st.booleans()):
        nat: Doc = {"ipv6": draw(maybe(st.booleans()))}
        if draw(st.booleans()):
            first, last = sorted(draw(st.lists(st.ip_addresses(v=4), min_size=2, max_size=2)))
            nat.update(address_start=str(first), address_end=str(last))
        if draw(st.booleans()):
            first, last = sorted(draw(st.lists(st.integers(1, 65535), min_size=2, max_size=2)))
            nat.update(port_start=first, port_end=last)
        forward["nat"] = nat
    if mode in ("bridge", "private", "vepa", "passthrough", "hostdev"):
        kind = draw(st.sampled_from(["interfaces", "pfs", "addresses", "nothing"]))
        if kind == "interfaces":
            forward["interfaces"] = [{"dev": d} for d in draw(devices)]
        elif kind == "pfs":
            forward["pfs"] = [{"dev": draw(ifname)}]
        elif kind == "addresses":
            numbers = st.tuples(
                st.integers(0, 0xFFFF),
                st.integers(0, 0xFF),
                st.integers(0, 0x1F),
                st.integers(0, 7),
            )
            forward["addresses"] = [
                {"domain": hex(a), "bus": str(b), "slot": hex(s), "function": str(f)}
                for a, b, s, f in draw(st.lists(numbers, unique=True, min_size=1, max_size=3))
            ]
    if mode == "hostdev":
        forward["managed"] = draw(maybe(st.booleans()))
        forward["driver"] = draw(maybe(st.sampled_from(["kvm", "vfio", "xen"])))
    return forward


@st.composite
def vlans(draw: st.DrawFn) -> Doc:
    ids = draw(st.lists(st.integers(0, 4095), unique=True, min_size=1, max_size=3))
    native = draw(maybe(st.integers(0, len(ids) - 1)))
    tags: list[Doc] = [{"id": i} for i in ids]
    if native is not None:
        tags[native]["native_mode"] = draw(st.sampled_from(["tagged", "untagged"]))
    trunks = [None, True] if len(ids) > 1 or native is not None else [None, True, False]
    return {"trunk": draw(st.sampled_from(trunks)), "tags": tags}


@st.composite
def bandwidths(draw: st.DrawFn) -> Doc:
    kbytes = st.integers(1, 2**32 - 1)
    out: Doc = {}
    for direction in ("inbound", "outbound"):
        if not draw(st.booleans()):
            continue
        floor = draw(maybe(kbytes)) if direction == "inbound" else None
        if floor is not None and draw(st.booleans()):
            out[direction] = {"floor": floor}
        else:
            out[direction] = {
                "average": draw(kbytes),
                "peak": draw(maybe(kbytes)),
                "burst": draw(maybe(kbytes)),
                "floor": floor,
            }
    return out


@st.composite
def virtualports(draw: st.DrawFn, typed: bool) -> Doc:
    kind = draw(
        st.sampled_from(
            ["802.1Qbg", "802.1Qbh", "openvswitch", "midonet"] + ([] if typed else [None])
        )
    )
    values = {
        "manager_id": st.integers(0, 255),
        "type_id": st.integers(0, 0xFFFFFF),
        "type_id_version": st.integers(0, 255),
        "instance_id": uuids,
        "profile_id": st.text(string.ascii_letters + "-", min_size=1, max_size=39),
        "interface_id": uuids,
    }
    allowed = {
        "802.1Qbg": ["manager_id", "type_id", "type_id_version", "instance_id"],
        "802.1Qbh": ["profile_id"],
        "openvswitch": ["profile_id", "interface_id"],
        "midonet": ["interface_id"],
        None: list(values),
    }[kind]
    chosen = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=len(allowed)))
    params = {field: draw(values[field]) for field in chosen}
    return {"type": kind, "parameters": params or None}


@st.composite
def dnses(draw: st.DrawFn) -> Doc:
    enable = draw(st.sampled_from([True, False, None]))
    dns: Doc = {"enable": enable, "forward_plain_names": draw(maybe(st.booleans()))}
    if enable is False:
        return dns
    dns["forwarders"] = draw(
        st.lists(st.fixed_dictionaries({"addr": ipv4}, optional={"domain": dns_name}), max_size=2)
    )
    dns["txts"] = draw(
        st.lists(st.fixed_dictionaries({"name": dns_name, "value": text}), max_size=2)
    )
    srvs = []
    for _ in range(draw(st.integers(0, 2))):
        srv: Doc = {
            "service": draw(st.text(SERVICE, min_size=1, max_size=10)),
            "protocol": draw(st.sampled_from(["tcp", "udp"])),
            "domain": draw(maybe(dns_name)),
            "target": draw(maybe(dns_name)),
        }
        if srv["target"] is not None:
            srv.update(
                port=draw(maybe(st.integers(1, 65535))),
                priority=draw(maybe(st.integers(0, 65535))),
                weight=draw(maybe(st.integers(0, 65535))),
            )
        srvs.append(srv)
    dns["srvs"] = srvs
    dns["hosts"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "ip": st.ip_addresses().map(str),
                    "hostnames": st.lists(dns_name, min_size=1, max_size=2),
                }
            ),
            max_size=2,
        )
    )
    return dns


@st.composite
def portgroups(draw: st.DrawFn) -> list[Doc]:
    names = draw(st.lists(name, unique=True, max_size=3))
    default = draw(maybe(st.integers(0, max(len(names) - 1, 0))))
    return [
        {
            "name": n,
            "default": i == default,
            "trust_guest_rx_filters": draw(maybe(st.booleans())),
            "vlan": draw(maybe(vlans())),
            "bandwidth": draw(maybe(bandwidths())),
            "virtualport": draw(maybe(virtualports(typed=False))),
        }
        for i, n in enumerate(names)
    ]


@st.composite
def definitions(draw: st.DrawFn, mode: str | None = None) -> Doc:
    mode = mode or draw(st.sampled_from(MODES))
    owns = mode in OWNS_BRIDGE
    forward = draw(forwards(mode))
    bridge: Doc = {"name": draw(maybe(ifname))}
    if mode == "bridge" and not forward.get("interfaces"):
        bridge["name"] = draw(ifname)  # a host bridge to attach to, or a macvtap device
    if owns:
        bridge.update(
            stp=draw(st.booleans()), delay=draw(st.integers(0, 4_294_967)), zone=draw(maybe(word))
        )
    if owns or mode == "bridge":
        bridge["mac_table_manager"] = draw(st.sampled_from(["kernel", "libvirt"]))
    ips: list[Doc] = []
    if owns:
        count = draw(st.integers(0 if mode == "none" else 1, 3))
        ips = [draw(ip_configs(i)) for i in range(count)]
        with_dhcp: set[bool] = set()
        for ip in ips:  # libvirt: one DHCP block per address family
            v6 = ":" in ip["address"]
            if ip.get("dhcp") and v6 in with_dhcp:
                ip["dhcp"] = None
            elif ip.get("dhcp"):
                with_dhcp.add(v6)
    doc: Doc = {
        "name": draw(name),
        "uuid": draw(maybe(uuids)),
        "title": draw(maybe(line)),
        "description": draw(maybe(text)),
        "metadata": draw(maybe(st.dictionaries(text, json_value, max_size=3))),
        "metadata_xml": draw(maybe(metadata_elements())),
        "ipv6": draw(maybe(st.booleans())),
        "trust_guest_rx_filters": draw(maybe(st.booleans())),
        "bridge": bridge,
        "mac": draw(maybe(macs())),
        "mtu": draw(maybe(st.integers(68, 65535))) if owns else None,
        "domain": draw(
            maybe(
                st.fixed_dictionaries(
                    {"name": dns_name},
                    optional={"local_only": st.booleans(), "register_names": st.booleans()},
                )
            )
        ),
        "dns": draw(maybe(dnses())),
        "forward": forward,
        "ips": ips,
        "routes": draw(routes(ips)),
        "portgroups": draw(portgroups()),
        "vlan": draw(maybe(vlans())),
        "bandwidth": draw(maybe(bandwidths())),
        "virtualport": draw(maybe(virtualports(typed=True))),
        "port_isolated": draw(maybe(st.booleans())),
        "autostart": draw(st.booleans()),
        "dnsmasq_options": draw(maybe(st.lists(text, min_size=1, max_size=3))),
    }
    return {k: v for k, v in doc.items() if v is not None}
