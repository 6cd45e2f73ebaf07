"""Hostile and broken XML bodies: refused quickly, with the right status, storing nothing."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.conf.errors import InvalidDocument
from app.conf.network.xml import network_from_xml
from tests.api.conftest import assert_problem

XML = {"Content-Type": "application/xml"}
SECONDS = 5.0  # generous: each case takes milliseconds, an expanded one would take forever
NETWORK = b"<network><name>n</name>%s</network>"

LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE network [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n<network><name>n</name><description>&lol9;</description></network>"
)
PASSWD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE network [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b"<network><name>n</name><description>&x;</description></network>"
)
REMOTE_DTD = (
    b'<!DOCTYPE network SYSTEM "http://127.0.0.1:9/network.dtd"><network><name>n</name></network>'
)
PARAMETER_ENTITY = (
    b'<!DOCTYPE network [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    b"<network><name>n</name></network>"
)
UTF16_DOCTYPE = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE network [<!ENTITY a "b">]>'
    "<network><name>&a;</name></network>"
).encode("utf-16")


def _nested(depth: int) -> bytes:
    body = b"<a:x>" * depth + b"</a:x>" * depth
    return NETWORK % (b'<metadata xmlns:a="urn:a">' + body + b"</metadata>")


CASES = [
    ("billion-laughs", LAUGHS, 400, "DOCTYPE"),
    ("external-entity-file", PASSWD, 400, "DOCTYPE"),
    ("external-dtd", REMOTE_DTD, 400, "DOCTYPE"),
    ("parameter-entity", PARAMETER_ENTITY, 400, "DOCTYPE"),
    ("utf16-doctype", UTF16_DOCTYPE, 400, "DOCTYPE"),
    ("nested-past-our-limit", _nested(70), 400, "nested deeper than 64"),
    ("nested-past-libxml2s-limit", _nested(20_000), 400, "not well-formed"),
    ("not-well-formed", b"<network>\n<name>n</name>\n<bridge>\n</network>", 400, "line 4"),
    ("undefined-entity", NETWORK % b"<description>&nope;</description>", 400, "nope"),
    ("empty", b"", 400, "not well-formed"),
    ("not-xml", b'{"name": "n"}', 400, "not well-formed"),
    ("wrong-root", b"<domain><name>n</name></domain>", 422, "<network>"),
    ("stp-maybe", NETWORK % b"\n<bridge stp='maybe'/>", 422, "'on' or 'off'"),
    ("unknown-attribute", NETWORK % b"<bridge name='br0' colour='blue'/>", 422, "colour"),
    ("unknown-element", NETWORK % b"<bridges/>", 422, "bridges"),
    ("two-bridges", NETWORK % b"<bridge/><bridge/>", 422, "only once"),
    ("stray-text", NETWORK % b"<bridge>hello</bridge>", 422, "hello"),
    ("no-name", b"<network/>", 422, "<name>"),
]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_hostile_body_is_refused_fast_and_stores_nothing(
    client: TestClient, body: bytes, status: int, says: str
) -> None:
    started = time.perf_counter()
    r = client.post("/v1/networks", content=body, headers=XML)
    assert time.perf_counter() - started < SECONDS
    problem = assert_problem(r, status, says=says)
    assert "root:" not in r.text  # /etc/passwd was never read into the answer
    if status == 422:
        assert all(e["field"].startswith("/network") for e in problem["errors"]), problem
    assert client.get("/v1/networks").json()["items"] == []


def test_stp_maybe_names_the_attribute_and_its_line(client: TestClient) -> None:
    r = client.post("/v1/networks", content=NETWORK % b"\n\n<bridge stp='maybe'/>", headers=XML)
    problem = assert_problem(r, 422, "/network/bridge/@stp", says="line 3")
    assert problem["errors"][0]["line"] == 3


def test_oversize_body_is_413_through_the_api_and_in_the_parser(client: TestClient) -> None:
    big = NETWORK % (b"<description>" + b"x" * (1024 * 1024) + b"</description>")
    assert_problem(client.post("/v1/networks", content=big, headers=XML), 413)
    assert client.get("/v1/networks").json()["items"] == []
    with pytest.raises(InvalidDocument) as caught:
        network_from_xml(big)
    assert caught.value.kind == "too_large"


def test_a_lot_of_harmless_xml_is_still_quick() -> None:
    """Many small elements: parsing and validation stay bounded too."""
    groups = b"".join(b"<portgroup name='g%d'/>" % i for i in range(5_000))
    started = time.perf_counter()
    definition = network_from_xml(NETWORK % groups)
    assert time.perf_counter() - started < SECONDS
    assert len(definition.portgroups) == 5_000


MEASURE = """
import resource, sys
from app.conf.errors import InvalidDocument
from app.conf.network.xml import network_from_xml
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    network_from_xml(sys.stdin.buffer.read())
except InvalidDocument as exc:
    print(exc.kind, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize(
    "body", [LAUGHS, PASSWD, _nested(20_000)], ids=["billion-laughs", "external-entity", "deep"]
)
def test_hostile_body_is_refused_in_bounded_memory(body: bytes) -> None:
    """An expanded billion laughs takes gigabytes; refusing one must take next to nothing.

    Measured in a fresh process (libxml2 allocates outside Python's tracing), as the growth
    of its peak resident memory across the parse."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", MEASURE],
        input=body,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    status, grown_kib = done.stdout.decode().split()
    assert status == "malformed", done.stderr
    assert int(grown_kib) < 16 * 1024, f"peak memory grew by {grown_kib} KiB"
