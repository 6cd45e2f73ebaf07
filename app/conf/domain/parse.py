"""libvirt <domain> XML -> DomainDefinition, keeping the document itself.

virtnet reads what it acts on: the domain's type, name, uuid, description, memory (in
KiB), vcpu count and, for every <interface> under <devices>, its type, mac, the
<source> attributes of a network or bridge, model, target dev, mtu, vlan, bandwidth and
virtualport. Everything else — and every unread attribute of the elements it reads —
stays in the stored document (``DomainDefinition.xml``) and comes back out unchanged.

Like libvirt's parser for a definition, it generates a MAC for an interface without one
(and writes it into the kept document) and drops what only a running domain has: the
root's id, a <target dev='vnet…'> (a name the host picks), an interface's <actual>, and
the portid/bridge/macTableManager a running network interface shows in its <source>.
The host to run on is not part of libvirt's format: it comes from ``?host=``.
"""

from __future__ import annotations

from typing import Any, get_args

from lxml import etree
from pydantic import ValidationError

from app.conf.common import random_mac
from app.conf.domain.model import DomainDefinition, InterfaceType
from app.conf.parts import read_bandwidth, read_virtualport, read_vlan
from app.conf.xml.body import located, parse_body, refuse
from app.conf.xml.reader import Findings, Node, Where, child_text, one_of, put, uint, yes_no
from app.conf.xml.tree import insert, remove, serialize

Doc = dict[str, Any]
NET_TYPES = get_args(InterfaceType)
#: libvirt's order of an <interface>'s children (virDomainNetDefFormat)
INTERFACE_ORDER = (
    *("mac", "source", "vlan", "virtualport", "bandwidth", "port", "actual", "ip", "route"),
    *("script", "downscript", "backenddomain", "target", "guest", "model", "driver"),
    *("backend", "filterref", "tune", "teaming", "link", "mtu", "coalesce", "rom", "boot"),
    *("alias", "address", "acpi"),
)
#: libvirt's LXC namespace (<lxc:namespace><lxc:sharenet type='netns' value=.../>)
LXC_NS = "http://libvirt.org/schemas/domain/lxc/1.0"
#: the name libvirt gives a tap it creates; such a target is live state, not configuration
GENERATED_TAP = "vnet"
#: attributes of a network interface's <source> that only a running domain shows
LIVE_SOURCE = ("portid", "bridge", "macTableManager")
_UNITS = {"": 1024, "b": 1, "byte": 1, "bytes": 1}
_POWERS = "kmgtpe"
MAX_BYTES = 2**63 - 1


def memory_unit(unit: str | None) -> int:
    """Bytes in one ``unit`` as libvirt's virScaleInteger reads it (KiB when absent)."""
    text = (unit or "").lower()
    if text in _UNITS:
        return _UNITS[text]
    if text[:1] in _POWERS and text[1:] in ("", "ib", "b"):
        return (1000 if text[1:] == "b" else 1024) ** (_POWERS.index(text[0]) + 1)
    raise ValueError("must be a unit like KiB, MiB, GiB, KB, MB or bytes")


def memory_kib(node: Node) -> int | None:
    """The size in KiB (rounded up, as libvirt does); None and an error when unreadable."""
    scale = node.attr("unit", memory_unit, loc=(*node.loc, "unit"))
    if scale is None and node.element.get("unit") is not None:
        return None
    text = node.text().strip()
    try:
        value = uint(text) * (scale or 1024)
    except ValueError as exc:
        node.fail(f"{text!r}: {exc}")
        return None
    if value > MAX_BYTES:
        node.fail(f"{text} {node.element.get('unit', 'KiB')} is more memory than libvirt takes")
        return None
    return -(-value // 1024)


def _source(node: Node, iface: Doc, kind: str | None) -> None:
    source = node.child("source", (*node.loc, "source"))
    if source is None:
        return
    keys = {"network": ("network", "portgroup"), "bridge": ("bridge",)}.get(kind or "", ())
    iface["source"] = {}
    for key in keys:
        put(iface["source"], key, source.attr(key, loc=(*node.loc, "source", key)))
    if kind == "network":
        for name in LIVE_SOURCE:
            source.element.attrib.pop(name, None)


def _single(node: Node, iface: Doc, tag: str, attr: str, key: str, convert: Any = str) -> None:
    child = node.child(tag, (*node.loc, key))
    if child is not None:
        put(iface, key, child.attr(attr, convert, loc=(*node.loc, key), required=True))


def read_interface(node: Node) -> Doc:
    """One <interface>: what virtnet models of it, in InterfaceDef's shape.

    The element is brought to its stored form: a generated <mac> added, live state dropped.
    """
    iface: Doc = {}
    kind = node.attr("type", one_of(*NET_TYPES), loc=(*node.loc, "type"), required=True)
    put(iface, "type", kind)
    mac = node.child("mac", (*node.loc, "mac"))
    if mac is None:
        iface["mac"] = random_mac()
        insert(node.element, etree.Element("mac", address=iface["mac"]), INTERFACE_ORDER)
    else:
        put(iface, "mac", mac.attr("address", loc=(*node.loc, "mac"), required=True))
    _source(node, iface, kind)
    _single(node, iface, "model", "type", "model")
    _single(node, iface, "mtu", "size", "mtu", uint)
    _single(node, iface, "guest", "dev", "guest")  # a container's name for it
    driver = node.child("driver", (*node.loc, "queues"))
    if driver is not None:
        put(iface, "queues", driver.attr("queues", uint, loc=(*node.loc, "queues")))
    target = node.child("target", (*node.loc, "target"))
    if target is not None:
        dev = target.attr("dev", loc=(*node.loc, "target"))
        if dev is not None and dev.startswith(GENERATED_TAP):
            remove(target.element)
        else:
            put(iface, "target", dev)
    read_vlan(node, iface)
    read_bandwidth(node, iface)
    _single(node, iface, "port", "isolated", "port_isolated", yes_no)
    read_virtualport(node, iface)
    actual = node.child("actual")
    if actual is not None:
        remove(actual.element)
    node.rest()  # the rest of the interface is kept as written
    return iface


def _sharenet(root: Node, doc: Doc) -> None:
    """A container sharing an existing network namespace: virtnet's ``netns``."""
    namespace = root.child(f"{{{LXC_NS}}}namespace")
    share = namespace.child(f"{{{LXC_NS}}}sharenet", ("netns",)) if namespace else None
    if share is None:
        return
    kind = share.attr("type", loc=("netns",), required=True)
    if kind not in (None, "netns"):
        share.fail(f"virtnet shares a named network namespace (type='netns'), not {kind!r}")
        return
    put(doc, "netns", share.attr("value", loc=("netns",), required=True))


def read_domain(element: etree._Element) -> tuple[Doc, Findings]:
    """What virtnet models of ``element``, and where each part came from (with errors)."""
    found = Findings(root="/domain")
    root = Node(element, "/domain", (), found)
    if element.tag != "domain":
        root.fail(f"the root element must be <domain>, not <{etree.QName(element).localname}>")
        return {}, found
    doc: Doc = {}
    put(doc, "type", root.attr("type", loc=("type",), required=True))
    element.attrib.pop("id", None)  # a running domain's number
    for tag in ("name", "uuid", "description"):
        put(doc, tag, child_text(root, tag, (tag,)))
    if "uuid" in doc:
        doc["uuid"] = doc["uuid"].strip()
    if "name" not in doc:
        root.fail("a domain needs a <name>")
    memory = root.child("memory", ("memory",))
    if memory is None:
        root.fail("a domain needs a <memory> size")
    else:
        put(doc, "memory", memory_kib(memory))
    vcpu = root.child("vcpu", ("vcpus",))
    if vcpu is not None:
        text = vcpu.text().strip()
        try:
            doc["vcpus"] = uint(text)
        except ValueError as exc:
            vcpu.fail(f"{text!r}: {exc}")
    _sharenet(root, doc)
    devices = root.child("devices", ("interfaces",))
    if devices is not None:
        nodes = devices.children("interface", ("interfaces",))
        doc["interfaces"] = [read_interface(node) for node in nodes]
    return doc, found


def domain_from_xml(raw: bytes, host: str | None) -> DomainDefinition:
    """A libvirt <domain> document (safely parsed) as the definition virtnet stores."""
    return read_domain_xml(raw, host)[0]


def read_domain_xml(raw: bytes, host: str | None) -> tuple[DomainDefinition, Findings]:
    """A libvirt <domain> document (safely parsed) as the definition virtnet stores.

    InvalidDocument (malformed or too large) for a document that cannot be read; invalid,
    naming the element or attribute and its line, for one virtnet cannot define.
    """
    root = parse_body(raw)
    doc, found = read_domain(root)
    found.where[("host",)] = Where("?host", None)
    if host is None:
        found.add("?host", None, "libvirt's <domain> does not say which host runs it: ?host=NAME")
    if found.errors:
        raise refuse(found.errors)
    doc["host"] = host
    doc["xml"] = serialize(root)
    try:
        return DomainDefinition.model_validate(doc), found
    except ValidationError as exc:
        raise located(found, exc) from None
