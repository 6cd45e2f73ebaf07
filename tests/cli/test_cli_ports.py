"""net-port-* verbs against a host that is up but has no worker: plugs stay pending."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import httpx
import pytest

from tests.cli.conftest import ROOT, Virtnet, WriteFile, add_host, table

OWNER = {"name": "vm1", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}


@pytest.fixture
def lab(virtnet: Virtnet, api: httpx.Client) -> str:
    api.post("/v1/networks", json={"name": "lab"}).raise_for_status()
    api.post("/v1/networks/lab/start").raise_for_status()  # active at once: no host is up yet
    add_host(virtnet.settings, "h1", age=-600)  # up for ten minutes, with no worker behind it
    return "lab"


def port_file(write: WriteFile, mac: str) -> str:
    return write(f"port-{mac[-2:]}.json", {"owner": OWNER, "host": "h1", "mac": mac})


def test_ports_without_waiting_then_listed_and_deleted(
    virtnet: Virtnet, write: WriteFile, lab: str
) -> None:
    first, second = port_file(write, "52:54:00:00:00:01"), port_file(write, "52:54:00:00:00:02")
    created, described = virtnet.each(
        ["net-port-create", lab, first, "--no-wait", "--json"],
        ["net-port-create", lab, second, "--no-wait"],
    )
    port = created.json()
    assert port["state"] == "plugging" and port["operation_id"] and port["host"] == "h1"
    assert described.code == 0 and " requested (plugging) from " in described.out
    assert described.out.startswith("Network port ") and "of host h1" in described.out

    listing = virtnet.ok("net-port-list", lab)
    header, rows = table(listing.out)
    assert header == ["ID", "Owner", "MAC", "Host", "Tap", "Bridge", "State"]
    assert sorted(r[2] for r in rows) == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert {r[6] for r in rows} == {"plugging"} and {r[4] for r in rows} == {"vnet0", "vnet1"}

    dumped, deleted, unknown, destroy = virtnet.each(
        ["net-port-dumpxml", lab, port["id"], "--json"],
        ["net-port-delete", lab, port["id"], "--no-wait"],
        ["net-port-delete", lab, "no-such-port", "--no-wait"],
        ["net-destroy", lab],
    )
    assert dumped.json()["id"] == port["id"]
    assert deleted.out == f"Network port {port['id']} deletion requested (running)\n"
    assert unknown.code == 1
    assert unknown.err == "error: network 'lab' has no port 'no-such-port'\n"
    assert destroy.code == 1 and "still has 2 port(s)" in destroy.err and "force" in destroy.err
    assert virtnet.ok("net-destroy", lab, "--force").out == "Network lab destroyed\n"


def test_waiting_gives_up_after_the_timeout_and_xml_gets_a_hint(
    virtnet: Virtnet, write: WriteFile, lab: str
) -> None:
    xml = write("port.xml", "<networkport><owner><name>vm1</name></owner></networkport>")
    waited, as_xml, dumpxml = virtnet.each(
        ["net-port-create", lab, port_file(write, "52:54:00:00:00:03"), "--timeout", "0.5"],
        ["net-port-create", lab, xml],
        ["net-port-dumpxml", lab, "no-such-port"],
    )
    assert waited.code == 1 and waited.out == ""
    assert waited.err.startswith("error: gave up waiting after 0.5 s: operation ")
    assert "(port.plug of port/" in waited.err and "goes on in the server" in waited.err
    # an incomplete <networkport> is refused with the element that is wrong (a server
    # without XML support for ports answers with a hint instead)
    assert as_xml.code == 1
    assert "/networkport" in as_xml.err or "hint: this server does not read XML" in as_xml.err
    assert dumpxml.code == 1 and dumpxml.err == "error: network 'lab' has no port 'no-such-port'\n"


def test_progress_is_drawn_on_a_terminal_only(virtnet: Virtnet, write: WriteFile, lab: str) -> None:
    args = ["net-port-create", lab, port_file(write, "52:54:00:00:00:04"), "--timeout", "0.6"]
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            cwd=ROOT,
            env=virtnet.env(),
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=30,
        )
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child's end is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert proc.returncode == 1
    text = drawn.decode()
    assert f"plugging a port into {lab} (" in text and " s)" in text  # spinner and seconds
    assert "\r\x1b[K" in text  # the line is cleared before the error is printed
    assert "gave up waiting after 0.6 s" in text
