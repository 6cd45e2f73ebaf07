"""JSON and XML are two views of one document: JSON -> XML -> JSON loses nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.conf.common import compact
from app.conf.network.model import NetworkDefinition
from app.conf.network.validate import definition_problems
from app.conf.network.xml import network_from_xml, network_to_xml
from tests.xml.strategies import MODES, definitions

XML = {"Content-Type": "application/xml", "Accept": "application/xml"}


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON document of a definition, as the API keeps and returns it."""
    definition = NetworkDefinition.model_validate(document)
    assert definition_problems(definition) == [], document
    return compact(definition.model_dump(mode="json"))


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_json_to_xml_to_json_is_lossless(mode: str, data: st.DataObject) -> None:
    stored = canonical(data.draw(definitions(mode)))
    assert canonical(stored) == stored  # the canonical form is a fixed point
    xml = network_to_xml({**stored, "status": {"state": "inactive"}})
    again = compact(network_from_xml(xml.encode()).model_dump(mode="json"))
    assert again == stored
    assert network_to_xml(again) == xml


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(definitions())
def test_json_to_xml_to_json_through_the_api(client: TestClient, document: dict[str, Any]) -> None:
    created = client.post("/v1/networks", json=document)
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    try:
        xml = client.get(f"/v1/networks/{name}", headers=XML)
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        put = client.put(f"/v1/networks/{name}", content=xml.content, headers=XML)
        assert put.status_code == 200, put.text
        assert put.content == xml.content
        got = client.get(f"/v1/networks/{name}").json()
        assert {**got, "status": None} == {**created.json(), "status": None}
    finally:
        client.delete(f"/v1/networks/{name}")
