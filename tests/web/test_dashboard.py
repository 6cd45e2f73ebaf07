"""The dashboard in headless Chromium against the real API over HTTP.

Changes are made through the API, never the browser, and the page must show them without a
reload: from the event stream when it is there, by polling when it is not. Where network
namespaces can be made, a real host worker realises the networks and plugs a domain's tap, so
the page (and docs/dashboard.png) shows hosts, realisations, ports and actual devices too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.services.realisation import FINAL_STATES
from tests import netns
from tests.api.conftest import make_token
from tests.cluster import ROOT, Cluster, wait_for

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "needs /usr/bin/chromium: scripts/setup --test installs it", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright: pip install .[test]"
)
expect = sync_api.expect

#: the README's picture is refreshed only on request, so a test run leaves the tree clean
SCREENSHOT = ROOT / "docs" / "dashboard.png"
UPDATE_SCREENSHOT = os.environ.get("VIRTNET_UPDATE_SCREENSHOT") == "1"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SOON = 10_000  # ms: a change must reach the page within this


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sync_api.BrowserContext]:
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: sync_api.BrowserContext) -> Iterator[sync_api.Page]:
    page = browser.new_page()  # a new tab: its own sessionStorage, so signed out
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def host(cluster: Cluster) -> Iterator[str | None]:
    """A host worker "h1" in a throwaway namespace (and the control worker), when possible."""
    if not netns.can_create_namespaces():
        yield None
        return
    with netns.namespace("web") as ns:
        cluster.start_control()
        cluster.start_host("h1", ns)
        cluster.wait_hosts_up("h1")
        yield "h1"
        cluster.close()  # workers stop before their namespace goes


def sign_in(page: sync_api.Page, base: str, token: str) -> None:
    page.goto(base)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("networks")).to_be_visible()


def network_row(page: sync_api.Page, name: str) -> sync_api.Locator:
    return page.locator(f'[data-testid="network-row"][data-name="{name}"]')


def finished(network: dict[str, Any]) -> dict[str, Any] | None:
    hosts = network["status"]["hosts"]
    return hosts[0] if hosts and hosts[0]["state"] in FINAL_STATES else None


def has_event_stream(cluster: Cluster) -> bool:
    return any(getattr(r, "path", "") == "/v1/events" for r in cluster.api.app.routes)


def test_wrong_token_returns_to_sign_in_with_the_apis_message(
    cluster: Cluster, page: sync_api.Page
) -> None:
    page.goto(cluster.serve_http())
    page.get_by_label("API token").fill("vn_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("not known")
    expect(page.get_by_test_id("networks")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_dashboard_follows_the_api_live_and_stops_a_network_with_a_click(
    cluster: Cluster,
    host: str | None,
    page: sync_api.Page,
    settings: Settings,
    tmp_path: Path,
) -> None:
    api = cluster.api
    base = cluster.serve_http()
    bridge = {"stp": False, "mac_table_manager": "libvirt"}
    assert api.post("/v1/networks", json={"name": "dev", "bridge": bridge}).status_code == 201
    sign_in(page, base, make_token(settings, "operator"))
    expect(network_row(page, "dev").get_by_test_id("network-state")).to_have_text("inactive")
    if has_event_stream(cluster):
        expect(page.get_by_test_id("live-mode")).to_have_attribute("data-mode", "live")
    page.evaluate("window.notReloaded = true")

    # defined and started through the API: the open page shows it active
    lab = {"name": "lab", "bridge": {**bridge, "name": "vnweb0"}}
    assert api.post("/v1/networks", json=lab).status_code == 201
    assert api.post("/v1/networks/lab/start").status_code == 200
    lab_row = network_row(page, "lab")
    # with no host up it waits for one: never active while no host realised it
    lab_state = "active" if host else "starting"
    expect(lab_row.get_by_test_id("network-state")).to_have_text(lab_state, timeout=SOON)
    expect(lab_row).to_contain_text("vnweb0")
    if host:
        # active, or degraded where the kernel has no bridge VLAN filtering (error says so)
        realised = wait_for(lambda: finished(cluster.network("lab")), what="lab realised")
        expect(lab_row.get_by_test_id("network-hosts")).to_contain_text(
            f"h1 {realised['state']}{realised.get('error') or ''}", timeout=SOON
        )
        expect(page.get_by_test_id("host-state")).to_have_text("up")
        domain = {
            "name": "web1",
            "host": host,
            "interfaces": [
                {"type": "network", "source": {"network": "lab"}, "mac": "52:54:00:0a:00:01"}
            ],
        }
        assert api.post("/v1/domains", json=domain).status_code == 201
        page.get_by_role("button", name="Start domain web1").click()
        expect(page.get_by_test_id("domain-state")).to_have_text("running", timeout=SOON)
        expect(page.get_by_test_id("interface")).to_contain_text("vnweb0")
        expect(page.get_by_test_id("interface-state")).to_have_text("plugged")
        expect(page.get_by_test_id("port-state")).to_have_text("plugged")
        tap = api.get("/v1/domains/web1").json()["interfaces"][0]["actual"]["tap"]
        expect(page.get_by_test_id("port-tap")).to_have_text(tap)
    expect(page.get_by_test_id("updated")).not_to_be_empty()
    page.mouse.move(0, 0)  # no hover highlight in the picture
    shot = SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "dashboard.png"
    page.screenshot(path=shot)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one

    if host:  # a network with a port refuses to stop: the page says why
        lab_row.get_by_role("button", name="Stop network lab").click()
        expect(page.get_by_test_id("notice")).to_contain_text("port", timeout=SOON)
        page.get_by_role("button", name="Stop domain web1").click()
        expect(page.get_by_test_id("domain-state")).to_have_text("shut_off", timeout=SOON)
    lab_row.get_by_role("button", name="Stop network lab").click()
    expect(lab_row.get_by_test_id("network-state")).to_have_text("inactive", timeout=SOON)
    assert api.get("/v1/networks/lab").json()["status"]["state"] == "inactive"
    assert page.evaluate("window.notReloaded") is True


def test_without_the_event_stream_the_page_polls_and_a_revoked_token_signs_out(
    cluster: Cluster, page: sync_api.Page, settings: Settings
) -> None:
    # as before /v1/events existed: the EventSource fails, the page falls back to polling
    page.route("**/v1/events?*", lambda route: route.fulfill(status=404, json={"status": 404}))
    sign_in(page, cluster.serve_http(), make_token(settings, "reader"))
    expect(page.get_by_test_id("live-mode")).to_have_attribute("data-mode", "polling")
    assert cluster.api.post("/v1/networks?start=true", json={"name": "tmp"}).status_code == 201
    row = network_row(page, "tmp")
    expect(row.get_by_test_id("network-state")).to_have_text("starting", timeout=SOON)
    expect(row).to_contain_text("transient")

    # the token is revoked while the page is open: the next read sends it back to sign in
    for token in cluster.api.get("/v1/tokens").json():
        if token["role"] == "reader":
            assert cluster.api.delete(f"/v1/tokens/{token['id']}").status_code == 204
    expect(page.get_by_test_id("signin-error")).to_contain_text("not known", timeout=SOON)
    expect(page.get_by_test_id("networks")).to_be_hidden()


def test_overlay_network_shows_its_hosts_underlay_and_table(
    cluster: Cluster, page: sync_api.Page, settings: Settings
) -> None:
    from tests.api.test_overlay_api import register

    register(settings, "u1", "192.0.2.11")  # a host as its heartbeat registers it
    base = cluster.serve_http()
    network = {"name": "ov", "overlay": {"vni": 77}, "bridge": {"stp": False}}
    assert cluster.api.post("/v1/networks?start=true", json=network).status_code == 201
    sign_in(page, base, make_token(settings, "reader"))
    row = network_row(page, "ov")
    expect(row.get_by_test_id("network-overlay")).to_have_text("vxlan VNI 77")
    expect(row.get_by_test_id("overlay-host")).to_contain_text(
        "192.0.2.11 · 0/0 remote entries · syncing"
    )
    expect(page.get_by_test_id("host-underlay")).to_have_text("192.0.2.11")


def test_overlay_gateway_host_is_marked_and_a_missing_one_says_why(
    cluster: Cluster, page: sync_api.Page, settings: Settings
) -> None:
    from tests.api.test_overlay_api import register

    register(settings, "u1", "192.0.2.11")
    base = cluster.serve_http()
    for name, vni, gateway in (("gw-here", 81, "u1"), ("gw-away", 82, "u9")):
        network = {
            "name": name,
            "overlay": {"vni": vni, "gateway_host": gateway},
            "bridge": {"stp": False},
            "ips": [{"address": f"10.{vni}.0.1", "prefix": 24}],
        }
        r = cluster.api.post("/v1/networks?start=true", json=network)
        assert r.status_code == 201, r.text
    sign_in(page, base, make_token(settings, "reader"))
    here = network_row(page, "gw-here").get_by_test_id("network-hosts")
    expect(here.locator("li")).to_have_count(1)
    expect(here.locator("li").first).to_contain_text("u1")
    expect(here.get_by_test_id("gateway-host")).to_have_text("gateway")
    away = network_row(page, "gw-away").get_by_test_id("network-hosts")
    expect(away.locator("li")).to_have_count(2)  # u1 carries its L2; u9 never registered
    expect(away.locator("li").filter(has_text="u9")).to_contain_text(
        "gatewaymissinghost u9 never registered"
    )
    expect(away.locator("li").filter(has_text="u1").get_by_test_id("gateway-host")).to_have_count(0)
