"""Hostile and out-of-range input: a 4xx problem+json every time, and nothing changes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.conf.ifname import ifname_problem
from app.conf.jsondoc import MAX_DEPTH
from tests.api.conftest import assert_problem

JSON = {"content-type": "application/json"}


def state(client: TestClient) -> tuple[list[str], list[str]]:
    networks = [n["name"] for n in client.get("/v1/networks").json()["items"]]
    domains = [d["name"] for d in client.get("/v1/domains").json()]
    return networks, domains


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deep_json_is_422_anywhere(client: TestClient) -> None:
    before = state(client)
    deep = nested(1000)
    bodies = {
        "/v1/networks": [
            f'{{"name": "n", "description": {deep}}}',
            deep,
            f'{{"name": "n", "metadata": {{"a": {nested(MAX_DEPTH)}}}}}',
        ],
        "/v1/domains": [
            f'{{"name": "d", "host": "h", "metadata": {{"a": {deep}}}}}',
            f'{{"name": "d", "host": "h", "metadata": {{"a": {nested(MAX_DEPTH)}}}}}',
        ],
    }
    for path, docs in bodies.items():
        for doc in docs:
            assert_problem(client.post(path, content=doc, headers=JSON), 422, says="deeper")
    xml = (
        "<network><name>n</name><metadata>"
        f"<virtnet:network xmlns:virtnet='urn:virtnet:network:1.0'>{{\"a\": {deep}}}"
        "</virtnet:network></metadata></network>"
    )
    r = client.post("/v1/networks", content=xml, headers={"content-type": "application/xml"})
    assert_problem(r, 422, says="deeper")
    assert state(client) == before
    # the limit itself is allowed
    ok = f'{{"name": "ok", "metadata": {{"a": {nested(MAX_DEPTH - 2)}}}}}'  # body: 32 deep
    assert client.post("/v1/networks", content=ok, headers=JSON).status_code == 201


def test_integers_past_the_database_range_are_422(admin: TestClient) -> None:
    for path in (
        "/v1/networks?offset=9223372036854775808",
        "/v1/networks?offset=2147483648",
        "/v1/networks?limit=99999999999999999999",
        "/v1/events?after=99999999999999999999",
        "/v1/events?after=2147483648",
        "/v1/events?limit=99999999999999999999",
    ):
        assert_problem(admin.get(path), 422)
    for token_id in ("2147483648", "9223372036854775808", "0", "-1"):
        assert_problem(admin.delete(f"/v1/tokens/{token_id}"), 422)
    r = admin.get("/v1/events", headers={"Last-Event-ID": "99999999999999999999"})
    assert_problem(r, 422, says="Last-Event-ID")
    assert len(admin.get("/v1/tokens").json()) == 1


BAD_IFNAMES = [
    "br%d", "all", "default", "lo", ".", "..", "a b", "a\tb", "a/b", "a:b", "a\xa0b",
    "x" * 16, "é" * 8, "",
]  # fmt: skip


def test_bridge_names_no_host_can_create_are_422(client: TestClient) -> None:
    for name in BAD_IFNAMES:
        r = client.post("/v1/networks", json={"name": "n", "bridge": {"name": name}})
        assert_problem(r, 422, "bridge.name")
    assert state(client)[0] == []


def test_interface_name_rule_is_the_kernel_layers_rule() -> None:
    from workers.kernel import links
    from workers.kernel.errors import KernelError

    for name in BAD_IFNAMES:
        assert ifname_problem(name), name
        with pytest.raises(KernelError):
            links.check_ifname(name, "test")
    for name in ("virbr0", "x" * 15, "é" * 7, "br-1.2_x", "a\x01b"):
        assert ifname_problem(name) is None, name
        links.check_ifname(name, "test")


def test_xml_error_list_is_capped(client: TestClient) -> None:
    attrs = " ".join(f"a{i}='x'" for i in range(60000))
    xml = f"<network {attrs}><name>n</name></network>"
    assert len(xml) > 600_000
    r = client.post("/v1/networks", content=xml, headers={"content-type": "application/xml"})
    body = assert_problem(r, 422, says="more")
    assert len(body["errors"]) == 50 and body["errors_omitted"] >= 59950
    assert len(r.content) < 20_000
    assert state(client)[0] == []


def test_nul_and_control_characters_are_422_naming_the_field(admin: TestClient) -> None:
    """PostgreSQL text cannot hold NUL, and libvirt XML no control character: each is refused
    with the field named (a NUL in a token's name was a 500, found by the fuzz test)."""
    before = state(admin), [t["id"] for t in admin.get("/v1/tokens").json()]
    for name in ("a\x00b", "two\nlines", "tab\there"):
        r = admin.post("/v1/tokens", json={"role": "reader", "name": name})
        assert_problem(r, 422, field="name", says="one line of text")
    iface = {"type": "network", "source": {"network": "n"}, "mac": "52:54:00:00:00:01"}
    domains = {
        "description": {"description": "a\x00b"},
        "metadata": {"metadata": {"k\x01": "v"}},
        "metadata.k.0": {"metadata": {"k": ["\x00"]}},
        "interfaces.0.model": {"interfaces": [{**iface, "model": "e1000\x07"}]},
    }
    for field, extra in domains.items():
        r = admin.post("/v1/domains", json={"name": "d", "host": "h", **extra})
        assert_problem(r, 422, field=field, says="XML cannot carry")
    assert (state(admin), [t["id"] for t in admin.get("/v1/tokens").json()]) == before
    # a description over several lines is fine: XML carries line breaks
    r = admin.post("/v1/domains", json={"name": "d", "host": "h", "description": "a\nb"})
    assert r.status_code == 201, r.text


def test_a_nul_in_a_path_is_422_on_every_database(admin: TestClient) -> None:
    """PostgreSQL cannot even look a NUL up: the driver's refusal is the client's error."""
    assert (
        admin.post("/v1/networks", json={"name": "n", "bridge": {"name": "vnnul0"}}).status_code
        == 201
    )
    for path in (
        "/v1/networks/a%00b",
        "/v1/domains/a%00b",
        "/v1/hosts/a%00b",
        "/v1/operations/a%00b",
    ):
        r = admin.get(path)
        assert r.status_code in (404, 422), r.text  # SQLite looks it up and finds nothing
        assert r.headers["content-type"].startswith("application/problem+json")
        if r.status_code == 422:
            assert "nothing was changed" in r.json()["detail"]
    r = admin.delete("/v1/networks/n%00")
    assert r.status_code in (404, 422), r.text
    assert [n["name"] for n in admin.get("/v1/networks").json()["items"]] == ["n"]
