"""Errors: the lower layers name a kind; the API alone knows which HTTP status it is."""

from __future__ import annotations

from typing import get_args

import pytest

from app.api.errors import DOCUMENT_STATUS, SERVICE_STATUS, service_status
from app.conf.errors import InvalidDocument, Kind
from app.conf.network.xml import network_from_xml
from app.services.errors import Conflict, ServiceError


def _kinds(cls: type[ServiceError]) -> list[type[ServiceError]]:
    return [cls, *(k for sub in cls.__subclasses__() for k in _kinds(sub))]


@pytest.mark.parametrize("kind", _kinds(ServiceError), ids=lambda k: k.__name__)
def test_every_kind_of_service_error_has_its_own_status(kind: type[ServiceError]) -> None:
    """A new kind must be added to the API's table, not fall back to 400 by accident."""
    assert kind in SERVICE_STATUS
    assert not hasattr(kind, "status")


def test_a_subclass_of_a_kind_answers_as_that_kind() -> None:
    class NameTaken(Conflict):
        pass

    assert service_status(NameTaken("taken")) == (409, "Conflict")


def test_every_kind_of_refused_document_has_a_status() -> None:
    assert set(DOCUMENT_STATUS) == set(get_args(Kind))


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"<network><name>n</name>", "malformed"),
        (b"<!DOCTYPE x><network/>", "malformed"),
        (b"<network><name>n</name><bridge stp='maybe'/></network>", "invalid"),
        (b"<network>" + b"<description>x</description>" * 50_000 + b"</network>", "too_large"),
    ],
)
def test_a_refused_network_document_says_its_kind(raw: bytes, kind: str) -> None:
    with pytest.raises(InvalidDocument) as caught:
        network_from_xml(raw)
    assert caught.value.kind == kind and caught.value.errors
    assert not hasattr(caught.value, "status")  # the API maps the kind
