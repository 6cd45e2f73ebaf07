"""A network no host could realise is `failed`, never `active`, and net-start exits 1."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Network, Realisation
from app.services import realisation
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests.cli.conftest import Virtnet, WriteFile, add_host
from tests.cluster import ROOT, wait_for

FORWARD_BRIDGE = {"name": "fb", "forward": {"mode": "bridge"}, "bridge": {"name": "nosuchbr0"}}


def _report(settings: Settings, host: str, state: str, error: str | None) -> bool:
    """What host ``host`` says once its realise task ran; False while it has no task yet.

    The network's generation is read in the same statement as the host's row: read before
    it, it could be the one from before the start's commit, and the report of an older
    generation is rightly ignored (the test then waited for a state that never came)."""
    with get_sessionmaker(settings.effective_database_url)() as session:
        found = session.execute(
            select(Network.id, Network.generation)
            .join(Realisation, Realisation.network_id == Network.id)
            .where(Network.name == "fb", Realisation.host == host)
        ).first()
        if found is None:
            return False
        realisation.record_report(
            Ctx(session, Outbox(None), settings),
            host=host,
            network_id=found.id,
            generation=found.generation,
            state=state,
            error=error,
        )
    return True


def test_a_network_every_host_failed_is_failed_and_net_start_exits_1(
    virtnet: Virtnet, cli_settings: Settings
) -> None:
    add_host(cli_settings, "fa1", age=-600)  # up, with no worker behind it
    add_host(cli_settings, "fa2", age=-600)
    import httpx

    api = httpx.Client(base_url=virtnet.url, headers={"Authorization": f"Bearer {virtnet.token}"})
    assert api.post("/v1/networks", json=FORWARD_BRIDGE).status_code == 201
    start = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "net-start", "fb"],
        cwd=ROOT,
        env=virtnet.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    no_bridge = "bridge 'nosuchbr0' does not exist on this host"
    wait_for(
        lambda: _report(cli_settings, "fa1", "failed", no_bridge) or start.poll() is not None,
        what="fa1's task",
    )
    assert start.poll() is None, start.communicate()
    assert api.get("/v1/networks/fb").json()["status"]["state"] == "starting"
    assert _report(cli_settings, "fa2", "failed", no_bridge)
    out, err = start.communicate(timeout=30)
    assert start.returncode == 1, (out, err)
    assert "no host could realise it" in err and "nosuchbr0" in err
    status = api.get("/v1/networks/fb").json()["status"]
    assert status["state"] == "failed"
    listed = api.get("/v1/networks", params={"state": "failed"}).json()["items"]
    assert [n["name"] for n in listed] == ["fb"]

    # one host realising it is enough for active; the other's failure stays visible
    assert _report(cli_settings, "fa2", "active", None)
    assert api.get("/v1/networks/fb").json()["status"]["state"] == "active"
    assert api.post("/v1/networks/fb/stop").status_code == 200


def test_with_no_host_up_a_started_network_is_starting(virtnet: Virtnet) -> None:
    import httpx

    api = httpx.Client(base_url=virtnet.url, headers={"Authorization": f"Bearer {virtnet.token}"})
    assert api.post("/v1/networks", json={"name": "lonely"}).status_code == 201
    started = virtnet.ok("net-start", "lonely")
    assert started.out == "Network lonely started\n" and "no host is up" in started.err
    assert api.get("/v1/networks/lonely").json()["status"]["state"] == "starting"


def test_define_of_libvirt_domain_xml_takes_host_or_the_only_one(
    virtnet: Virtnet, cli_settings: Settings, write: WriteFile
) -> None:
    xml = "<domain type='kvm'><name>{}</name><memory>1024</memory><vcpu>1</vcpu></domain>"
    none_yet = virtnet.fails(2, "define", write("d0.xml", xml.format("d0")))
    assert "--host" in none_yet.err and "no host has registered" in none_yet.err
    add_host(cli_settings, "only1", age=-600)
    one = virtnet.ok("define", write("d1.xml", xml.format("d1")), "--json").json()
    assert one["host"] == "only1"
    add_host(cli_settings, "other2", age=-600)
    several = virtnet.fails(2, "define", write("d2.xml", xml.format("d2")))
    assert "only1, other2" in several.err
    chosen = virtnet.ok("define", write("d3.xml", xml.format("d3")), "--host", "other2", "--json")
    assert chosen.json()["host"] == "other2"
    doc = write("d4.json", {"name": "d4"})
    assert virtnet.ok("define", doc, "--host", "only1", "--json").json()["host"] == "only1"
