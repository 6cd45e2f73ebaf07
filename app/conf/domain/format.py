"""DomainDefinition (and its ports) -> libvirt <domain> XML.

The kept document (``DomainDefinition.xml``) is printed as it was stored, edited only
where virtnet's fields say something else: after a JSON update, a hot-plug, a detach, or
for a domain defined as JSON (which starts from an empty <domain>). Interfaces are
matched to their elements by MAC, in order; an element no interface claims is gone (it
was detached), and a new interface is printed in libvirt's own form.

Three views, as libvirt has: the definition; the live form of a running domain, whose
network interfaces show ``<source network=… portid=… bridge=… macTableManager=…/>`` and
``<target dev=…/>``; and the status form, with ``<actual type=…><source bridge=…
macTableManager=…/>`` and the bandwidth and isolation in force ``</actual>`` inside each
network interface instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from lxml import etree
from pydantic import ValidationError

from app.conf.domain.model import REALISED_TYPES, DomainDefinition, InterfaceDef
from app.conf.domain.parse import INTERFACE_ORDER, LXC_NS, memory_kib, read_interface
from app.conf.network.model import Bandwidth, VirtualPort, Vlan
from app.conf.parts import print_bandwidth, print_virtualport, print_vlan
from app.conf.port.actual import StoredPort, actual
from app.conf.xml import safe
from app.conf.xml.reader import Findings, Node
from app.conf.xml.tree import INDENT, depth, element, insert, remove, replace, serialize
from app.conf.xml.writer import Out

#: libvirt's order of a <domain>'s children (virDomainDefFormatInternal), as far as it matters
DOMAIN_ORDER = (
    *("name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory"),
    *("currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads"),
    *("iothreadids", "cputune", "numatune", "resource", "sysinfo", "bootloader"),
    *("bootloader_args", "os", "idmap", "features", "cpu", "clock", "on_poweroff"),
    *("on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel"),
)
#: libvirt's order of devices (virDomainDefFormatInternal), for an interface added
DEVICE_ORDER = (
    *("emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard"),
    *("serial", "parallel", "console", "channel", "input", "tpm", "graphics", "sound"),
)
SKELETON = "<domain type='kvm'>\n  <name>x</name>\n  <vcpu placement='static'>1</vcpu>\n</domain>"
Editor = Callable[[etree._Element, Any], None]


def _child(parent: etree._Element, tag: str, order: tuple[str, ...]) -> etree._Element:
    """The child ``tag`` of ``parent``, added in libvirt's place if missing."""
    found = parent.find(tag)
    if found is None:
        found = etree.Element(tag)
        insert(parent, found, order)
    return found


def _set_text(parent: etree._Element, tag: str, text: str | None) -> None:
    found = parent.find(tag)
    if text is None:
        if found is not None:
            remove(found)
    elif found is None or found.text != text:
        _child(parent, tag, DOMAIN_ORDER).text = text


def _kib(element: etree._Element | None) -> int | None:
    if element is None:
        return None
    found = Findings()
    return memory_kib(Node(copy.deepcopy(element), "", (), found))


def _patch_sharenet(root: etree._Element, netns: str | None) -> None:
    """<lxc:namespace><lxc:sharenet type='netns' value=.../>, libvirt's way of saying it."""
    namespace = root.find(f"{{{LXC_NS}}}namespace")
    share = None if namespace is None else namespace.find(f"{{{LXC_NS}}}sharenet")
    if netns is None:
        if share is not None and share.get("type") == "netns":
            remove(share)
            assert namespace is not None
            if not len(namespace):
                remove(namespace)
        return
    if share is not None and share.get("value") == netns:
        return
    if namespace is None:  # libvirt prints it last, its xmlns on the root
        text = (
            f"<lxc:namespace xmlns:lxc='{LXC_NS}'>\n{INDENT * 2}"
            f"<lxc:sharenet type='netns' value='{netns}'/>\n{INDENT}</lxc:namespace>"
        )
        insert(root, element(text), DOMAIN_ORDER)
        return
    if share is None:
        share = etree.SubElement(namespace, f"{{{LXC_NS}}}sharenet")
    share.set("type", "netns")
    share.set("value", netns)


def _patch_domain(root: etree._Element, d: DomainDefinition) -> None:
    if root.get("type") != d.type:
        root.set("type", d.type)
    _patch_sharenet(root, d.netns)
    _set_text(root, "name", d.name)
    _set_text(root, "uuid", None if d.uuid is None else str(d.uuid))
    _set_text(root, "description", d.description)
    memory = root.find("memory")
    if _kib(memory) != d.memory:
        memory = _child(root, "memory", DOMAIN_ORDER)
        memory.set("unit", "KiB")
        memory.text = str(d.memory)
    current = root.find("currentMemory")
    if current is not None and (_kib(current) or 0) > d.memory:  # libvirt clamps it too
        current.set("unit", "KiB")
        current.text = str(d.memory)
    vcpu = root.find("vcpu")
    if (vcpu is not None or d.vcpus != 1) and (vcpu is None or vcpu.text != str(d.vcpus)):
        _child(root, "vcpu", DOMAIN_ORDER).text = str(d.vcpus)


def _stored(element: etree._Element) -> dict[str, Any]:
    """What the kept element says, in InterfaceDef's JSON form ({} when it says nothing valid)."""
    found = Findings()
    doc = read_interface(Node(copy.deepcopy(element), "", ("i",), found))
    try:
        return {} if found.errors else InterfaceDef.model_validate(doc).model_dump(mode="json")
    except ValidationError:
        return {}


def _attr_child(tag: str, attr: str) -> Editor:
    def edit(el: etree._Element, value: Any) -> None:
        found = el.find(tag)
        if value is None:
            if found is not None:
                remove(found)
        else:
            _child(el, tag, INTERFACE_ORDER).set(attr, str(value))

    return edit


def _yes_no_child(tag: str, attr: str) -> Editor:
    plain = _attr_child(tag, attr)

    def edit(el: etree._Element, value: Any) -> None:
        plain(el, None if value is None else ("yes" if value else "no"))

    return edit


def _printed(tag: str, printer: Callable[[Out, Any], None], model: Any) -> Editor:
    def edit(el: etree._Element, value: Any) -> None:
        found = el.find(tag)
        new = None
        if value is not None:
            out = Out()
            out.level = depth(el) + 1
            printer(out, model.model_validate(value))
            new = element("".join(out.lines))
        if found is not None and new is not None:
            replace(found, new)
        elif found is not None:
            remove(found)
        elif new is not None:
            insert(el, new, INTERFACE_ORDER)

    return edit


def _source(el: etree._Element, value: Any) -> None:
    source = _child(el, "source", INTERFACE_ORDER)
    for key in ("network", "portgroup", "bridge"):
        if value.get(key) is None:
            source.attrib.pop(key, None)
        else:
            source.set(key, value[key])
    if not len(source.attrib) and not len(source):
        remove(source)


def _queues(el: etree._Element, value: Any) -> None:
    driver = el.find("driver")
    if value is not None:
        _child(el, "driver", INTERFACE_ORDER).set("queues", str(value))
    elif driver is not None:
        driver.attrib.pop("queues", None)
        if not len(driver.attrib) and not len(driver):
            remove(driver)


#: how each InterfaceDef field is written into an <interface> element
EDITORS: dict[str, Editor] = {
    "mac": _attr_child("mac", "address"),
    "source": _source,
    "model": _attr_child("model", "type"),
    "target": _attr_child("target", "dev"),
    "mtu": _attr_child("mtu", "size"),
    "guest": _attr_child("guest", "dev"),
    "queues": _queues,
    "vlan": _printed("vlan", print_vlan, Vlan),
    "bandwidth": _printed("bandwidth", print_bandwidth, Bandwidth),
    "port_isolated": _yes_no_child("port", "isolated"),
    "virtualport": _printed("virtualport", print_virtualport, VirtualPort),
}


def _patch_interface(el: etree._Element, want: InterfaceDef) -> None:
    stored, wanted = _stored(el), want.model_dump(mode="json")
    if el.get("type") != want.type:
        el.set("type", want.type)
        source = el.find("source")
        if source is not None:  # another type's source means something else
            remove(source)
        stored.pop("source", None)
    for field, edit in EDITORS.items():
        if stored.get(field) != wanted.get(field):
            edit(el, wanted.get(field))


def _new_interface(want: InterfaceDef, level: int) -> etree._Element:
    """An interface element printed at ``level`` (built in place-holding parents)."""
    parent = etree.Element("level")
    for _ in range(level - 1):
        parent = etree.SubElement(parent, "level")
    parent.text = "\n" + INDENT * level
    el = etree.SubElement(parent, "interface", type=want.type)
    _patch_interface(el, want)
    parent.remove(el)
    el.tail = "\n" + INDENT * level
    return el


def _live(el: etree._Element, want: InterfaceDef, port: StoredPort | None, status: bool) -> None:
    """Show what the connection really uses, as libvirt shows it for a running domain."""
    if port is None:
        return
    device = actual(port)
    manager = "libvirt" if device["mac_table_manager"] == "libvirt" else None
    if want.type == "network":
        source = _child(el, "source", INTERFACE_ORDER)
        source.set("portid", port.id)
        if status:
            out = Out()
            out.level = depth(el) + 1
            out.open("actual", [("type", device["type"])])
            out.empty("source", [("bridge", device["bridge"]), ("macTableManager", manager)])
            # the values in force (portgroup and network merged), as libvirt's status shows them
            if device["bandwidth"]:
                print_bandwidth(out, Bandwidth.model_validate(device["bandwidth"]))
            if device["port_isolated"]:
                out.empty("port", [("isolated", "yes")])
            out.close("actual")
            insert(el, element("".join(out.lines)), INTERFACE_ORDER)
        else:
            source.set("bridge", device["bridge"])
            if manager:
                source.set("macTableManager", manager)
    _child(el, "target", INTERFACE_ORDER).set("dev", device["tap"])
    if port.spec.get("guest_ifname"):  # a container's end of the veth pair
        _child(el, "guest", INTERFACE_ORDER).set("dev", port.spec["guest_ifname"])


def _patch_interfaces(
    root: etree._Element, wanted: list[InterfaceDef], ports: dict[str, StoredPort], status: bool
) -> None:
    devices = root.find("devices")
    if devices is None:
        if not wanted:
            return
        devices = _child(root, "devices", DOMAIN_ORDER)
    slots = devices.findall("interface")
    unclaimed = list(slots)
    chosen: list[etree._Element] = []
    for want in wanted:
        el = next((e for e in unclaimed if _mac(e) == want.mac), None)
        if el is None:
            el = _new_interface(want, depth(devices) + 1)
        else:
            unclaimed.remove(el)
            _patch_interface(el, want)
        live = ports.get(want.mac or "") if want.type in REALISED_TYPES else None
        _live(el, want, live, status)
        chosen.append(el)
    _place(devices, slots, chosen)


def _mac(el: etree._Element) -> str | None:
    mac = el.find("mac")
    return None if mac is None else (mac.get("address") or "").lower()


def _place(
    devices: etree._Element, slots: list[etree._Element], chosen: list[etree._Element]
) -> None:
    """Put ``chosen`` where the kept interfaces were, in order; new ones after them."""
    holders = []
    for slot in slots:
        holder = etree.Element("slot")
        holder.tail = slot.tail
        devices.replace(slot, holder)
        holders.append(holder)
    last = None
    for i, el in enumerate(chosen):
        if i < len(holders):
            replace(holders[i], el)
        elif last is not None:
            el.tail, last.tail = last.tail, el.tail
            last.addnext(el)
        else:
            insert(devices, el, DEVICE_ORDER)
        last = el
    for holder in holders[len(chosen) :]:
        remove(holder)


def domain_to_xml(
    definition: dict[str, Any], ports: list[StoredPort], *, live: bool = True, status: bool = False
) -> str:
    """The domain as libvirt prints it: ``live`` shows running interfaces' connections
    (``status`` as libvirt's status XML does, in <actual>); otherwise the definition."""
    d = DomainDefinition.model_validate(definition)
    root = safe.parse((d.xml or SKELETON).encode())
    _patch_domain(root, d)
    by_mac = {p.mac: p for p in ports} if live else {}
    _patch_interfaces(root, d.interfaces, by_mac, status)
    return serialize(root)
