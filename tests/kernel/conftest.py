from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import netns
from workers.kernel import HostNet

# every test in tests/kernel needs root (it creates network namespaces)
requires_root = pytest.mark.skipif(
    not netns.can_create_namespaces(), reason="needs root and iproute2 to create namespaces"
)


@pytest.fixture
def ns() -> Iterator[str]:
    """A throwaway network namespace (vnt-...), deleted after the test even on failure."""
    with netns.namespace("k") as name:
        yield name


@pytest.fixture
def host(ns: str) -> Iterator[HostNet]:
    with HostNet(ns) as hostnet:
        yield hostnet


@pytest.fixture(autouse=True)
def stays_in_own_namespace() -> Iterator[None]:
    """Entering a test namespace happens in helper threads only, never in the test's own."""
    before = os.stat("/proc/thread-self/ns/net").st_ino
    yield
    assert os.stat("/proc/thread-self/ns/net").st_ino == before
