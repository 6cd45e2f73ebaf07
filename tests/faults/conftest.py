from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns
from tests.faults.load import no_ports
from tests.faults.rig import Rig
from tests.services import postgres_bin


@pytest.fixture(scope="module")
def rig_world() -> Iterator[Rig]:
    """One cluster for the whole module, on servers of its own."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    if postgres_bin() is None or shutil.which("redis-server") is None:
        pytest.skip("needs PostgreSQL server binaries and redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="virtnet-faults-"))
    rig = Rig(workdir)
    try:
        rig.start()
        yield rig
    finally:
        rig.stop()
        if os.environ.get("VIRTNET_FAULTS_KEEP"):
            print(f"fault suite logs kept in {workdir / 'logs'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def rig(rig_world: Rig) -> Rig:
    """The module's cluster, whole again and with no ports, before each fault."""
    rig_world.repair()
    no_ports(rig_world)
    return rig_world
