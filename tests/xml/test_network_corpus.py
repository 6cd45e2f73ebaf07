"""Conformance with libvirt 9.0.0's networkxml2xmltest data, through the REST API.

Every in/ file with an out/ twin is defined with Content-Type: application/xml into an
empty database and read back with Accept: application/xml; the result must be the out/
file as an XML tree. Files without a twin are ones libvirt refuses: virtnet must too.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.conf.common import compact
from app.conf.network.xml import network_from_xml, network_to_xml
from tests.api.conftest import assert_problem
from tests.xml.corpus import IN, OUT, as_tuple, drop_generated, files, tree

XML = {"Content-Type": "application/xml", "Accept": "application/xml"}
#: printed by libvirt's test with VIR_NETWORK_XML_INACTIVE (see the corpus README)
INACTIVE = {"passthrough-pf.xml", "hostdev-pf.xml"}
#: like networkxml2xmltest's expected failures: libvirt's parser accepts these, virtnet's
#: define does not (strict: if one starts passing, the reason is stale)
EXPECTED_FAILURES = {
    "passthrough-pf.xml": (
        "an <ip> in forward mode 'passthrough': the out/ file comes from libvirt's parser-only "
        "test, but libvirt's own define refuses it too (networkValidate: \"Unsupported <ip> "
        "element in network local with forward mode='passthrough'\"), as virtnet does (422)"
    ),
}
TWINNED = [name for name in files(IN) if (OUT / name).exists()]
REFUSED = [name for name in files(IN) if not (OUT / name).exists()]


def test_the_corpus_is_there() -> None:
    assert TWINNED and REFUSED, f"libvirt's network test data is missing from {IN.parent}"


def _names(client: TestClient) -> list[str]:
    return [n["name"] for n in client.get("/v1/networks").json()["items"]]


TWINNED_CASES = [
    pytest.param(n, marks=pytest.mark.xfail(reason=EXPECTED_FAILURES[n], strict=True))
    if n in EXPECTED_FAILURES
    else n
    for n in TWINNED
]


@pytest.mark.parametrize("name", TWINNED_CASES)
def test_corpus_file_round_trips(client: TestClient, name: str) -> None:
    given = (IN / name).read_bytes()
    created = client.post("/v1/networks", content=given, headers=XML)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/xml")
    network = tree(given).findtext("name")
    params = {"inactive": "true"} if name in INACTIVE else {}
    got = client.get(f"/v1/networks/{network}", params=params, headers=XML)
    assert got.status_code == 200, got.text
    actual, expected = tree(got.content), tree((OUT / name).read_bytes())
    drop_generated(actual, expected, tree(given))
    assert as_tuple(actual) == as_tuple(expected)
    # and the JSON view is the same document
    assert client.get(f"/v1/networks/{network}").json()["name"] == network


@pytest.mark.parametrize("name", REFUSED)
def test_corpus_file_libvirt_refuses_is_refused(client: TestClient, name: str) -> None:
    r = client.post("/v1/networks", content=(IN / name).read_bytes(), headers=XML)
    body = assert_problem(r, 422)
    assert all(e["field"].startswith("/network") and e["line"] for e in body["errors"]), body
    assert _names(client) == []


@pytest.mark.parametrize("name", TWINNED_CASES)
def test_corpus_file_prints_byte_for_byte(name: str) -> None:
    """Parser and formatter alone, as networkxml2xmltest runs libvirt's: the exact out/ text."""
    definition = network_from_xml((IN / name).read_bytes())
    document = compact(definition.model_dump(mode="json"))
    assert network_to_xml(document) == (OUT / name).read_text()
