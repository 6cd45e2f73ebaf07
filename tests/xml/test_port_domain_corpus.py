"""Conformance with libvirt 9.0.0's network port and domain test data.

networkport/: every file parses into the model and prints back as the same document
(libvirt's virnetworkportxml2xmltest: input and output are one file), whatever its plug
type; through the API, what virtnet cannot allocate is refused by name.
domain/: every file is defined through the API with Content-Type: application/xml; its
interfaces appear in the JSON view (count and MACs as in the file) and the XML view gives
the file back unchanged. The score is printed at the end of the run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from app.conf.port.xml import format_networkport, parse_networkport
from app.config import Settings
from tests.api.test_ports_api import add_host
from tests.xml.corpus import CORPUS, as_tuple, files, tree

PORTS = CORPUS.parent / "networkport"
DOMAINS = CORPUS.parent / "domain"
XML = {"Content-Type": "application/xml"}
ACCEPT = {"Accept": "application/xml"}
#: plug types libvirt has and virtnet does not realise: parsed and printed, refused on POST
UNREALISED_PLUGS = {"plug-direct.xml": "direct", "plug-hostdev-pci.xml": "hostdev-pci"}
UNREALISED_PLUGS["plug-hostdev-pci-unmanaged.xml"] = "hostdev-pci"
#: what POSTing each file gets (its <uuid> becomes the port id, as in libvirt)
PORT_POSTS: dict[str, tuple[int, set[str]]] = {
    "plug-none.xml": (202, set()),
    "plug-direct.xml": (422, {"/networkport/plug/@type", "/networkport/virtualport"}),
    "plug-hostdev-pci.xml": (422, {"/networkport/plug/@type"}),
    "plug-hostdev-pci-unmanaged.xml": (422, {"/networkport/plug/@type"}),
    "plug-network.xml": (
        422,
        {
            "/networkport/bandwidth/@classID",
            "/networkport/rxfilters/@trustGuest",
        },
    ),
    "plug-bridge.xml": (
        422,
        {"/networkport/bandwidth/@classID", "/networkport/rxfilters/@trustGuest"},
    ),
}
_runs: dict[str, list[bool]] = defaultdict(list)


class _Score:
    """Prints how many corpus files passed (on every database they ran on)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for kind in ("networkport", "domain"):
            runs = {k: v for k, v in _runs.items() if k.startswith(kind + "/")}
            if not runs:
                continue
            passed = sorted(k for k, seen in runs.items() if all(seen))
            failed = sorted(k.split("/", 1)[1] for k in runs if k not in passed)
            terminalreporter.write_sep("-", f"libvirt 9.0.0 {kind} corpus")
            terminalreporter.write_line(
                f"{len(passed)} of {len(runs)} {kind} files pass"
                + (f"; not passing: {', '.join(failed)}" if failed else "")
            )


@pytest.fixture(scope="module", autouse=True)
def _score(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if manager.get_plugin("virtnet-port-domain-corpus") is None:
        manager.register(_Score(), "virtnet-port-domain-corpus")


class _Run:
    def __init__(self, key: str) -> None:
        self.key = key

    def __enter__(self) -> None:
        _runs[self.key].append(False)

    def __exit__(self, kind: object, *_: object) -> None:
        _runs[self.key][-1] = kind is None


def test_the_corpus_is_there() -> None:
    assert files(PORTS) and files(DOMAINS), f"libvirt's test data is missing from {CORPUS.parent}"


@pytest.mark.parametrize("name", files(PORTS))
def test_networkport_file_round_trips(name: str) -> None:
    with _Run(f"networkport/{name}"):
        given = (PORTS / name).read_text()
        port, _ = parse_networkport(given.encode())
        printed = format_networkport(port)
        assert as_tuple(tree(printed)) == as_tuple(tree(given))
        assert printed == given  # byte for byte, as libvirt's own test demands
        kind = UNREALISED_PLUGS.get(name)
        if kind is not None:
            assert port.plug is not None and port.plug.type == kind  # kept in the model


@pytest.fixture
def web(client: TestClient, api_settings: Settings) -> None:
    add_host(api_settings, "hostA")
    network = {"name": "default", "bridge": {"name": "virbr0"}, "portgroups": [{"name": "web1"}]}
    assert client.post("/v1/networks", json=network).status_code == 201
    assert client.post("/v1/networks/default/start").status_code == 200


@pytest.mark.parametrize("name", files(PORTS))
def test_networkport_file_through_the_api(client: TestClient, web: None, name: str) -> None:
    given = (PORTS / name).read_text()
    r = client.post("/v1/networks/default/ports?host=hostA", content=given, headers=XML)
    status, fields = PORT_POSTS[name]
    assert r.status_code == status, r.text
    if status == 422:
        assert {e["field"] for e in r.json()["errors"]} == fields, r.text
    kind = UNREALISED_PLUGS.get(name)
    if kind is not None:
        assert f"type {kind!r}" in r.json()["detail"]
    if status == 202:
        shown = client.get(r.headers["location"], headers=ACCEPT).text
        port, _ = parse_networkport(shown.encode())
        assert port.plug is not None and port.plug.bridge == "virbr0"
        assert port.mac == "52:54:00:7b:35:93" and port.owner.name == "memtest"
        assert str(port.uuid) == re.search(r"<uuid>([^<]*)</uuid>", given).group(1)  # type: ignore[union-attr]


def _macs(document: bytes) -> list[str | None]:
    """The MAC of each interface in the file (None where it has none)."""
    macs = []
    for interface in etree.fromstring(document).iterfind("devices/interface"):
        mac = interface.find("mac")
        macs.append(None if mac is None else mac.get("address"))
    return macs


@pytest.fixture
def host(api_settings: Settings) -> Iterator[None]:
    add_host(api_settings, "hostA")
    yield


@pytest.mark.parametrize("name", files(DOMAINS))
def test_domain_file_is_defined_and_read_back(client: TestClient, host: None, name: str) -> None:
    with _Run(f"domain/{name}"):
        given = (DOMAINS / name).read_bytes()
        created = client.post("/v1/domains?host=hostA", content=given, headers=XML)
        assert created.status_code == 201, created.text
        view = created.json()
        macs = _macs(given)
        assert len(view["interfaces"]) == len(macs)
        for interface, mac in zip(view["interfaces"], macs, strict=True):
            assert interface["mac"] == (mac or "").lower() or (
                mac is None and interface["mac"].startswith("52:54:00:")
            )
            assert interface["actual"] is None
        assert view["host"] == "hostA"
        assert client.get(f"/v1/domains/{view['name']}").json()["interfaces"] == view["interfaces"]
        shown = client.get(f"/v1/domains/{view['name']}", headers=ACCEPT)
        assert shown.headers["content-type"] == "application/xml"
        assert as_tuple(tree(shown.text)) == as_tuple(tree(given))
        assert shown.text == given.decode()  # verbatim: comments and layout too
