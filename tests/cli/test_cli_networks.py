"""net-* verbs: virsh's output for people, the API's JSON for scripts, every error path."""

from __future__ import annotations

import httpx

from tests.cli.conftest import Virtnet, WriteFile, fields, table

LAB = {"name": "lab", "bridge": {"mac_table_manager": "libvirt"}}
NET_LIST_HEADER = ["Name", "State", "Autostart", "Persistent", "Bridge", "MAC table"]
LAB_XML = """
<!-- a libvirt user's file: told apart from JSON by its content, not its name -->
<network>
  <name>xlab</name>
  <bridge name='vnx0' stp='off' macTableManager='libvirt'/>
</network>
"""


def test_a_network_from_definition_to_undefinition(virtnet: Virtnet, write: WriteFile) -> None:
    path = write("lab.json", LAB)
    assert virtnet.ok("net-define", path).out == f"Network lab defined from {path}\n"

    active, every = virtnet.each(["net-list"], ["net-list", "--all"])
    assert table(active.out) == (NET_LIST_HEADER, [])  # virsh lists active networks only
    assert table(every.out)[1] == [["lab", "inactive", "no", "yes", "virbr0", "libvirt"]]

    # with no host up, a started network is active at once
    assert virtnet.ok("net-start", "lab").out == "Network lab started\n"
    assert virtnet.ok("net-autostart", "lab").out == "Network lab marked as autostarted\n"
    listing, info = virtnet.each(["net-list"], ["net-info", "lab"])
    assert table(listing.out)[1] == [["lab", "active", "yes", "yes", "virbr0", "libvirt"]]
    shown = fields(info.out)
    assert shown["Name"] == "lab" and shown["Active"] == "yes" and shown["Autostart"] == "yes"
    assert shown["Bridge"] == "virbr0" and shown["MAC table"] == "libvirt"
    assert len(shown["UUID"]) == 36

    assert virtnet.ok("net-destroy", "lab").out == "Network lab destroyed\n"
    assert virtnet.ok("net-undefine", "lab").out == "Network lab has been undefined\n"


def test_json_output_is_the_apis_and_files_come_from_stdin(
    virtnet: Virtnet, api: httpx.Client
) -> None:
    created = virtnet.ok("net-create", "-", "--json", input='{"name": "tmp"}').json()
    assert created == api.get("/v1/networks/tmp").json()
    assert created["status"]["state"] == "active" and created["status"]["persistent"] is False
    assert [n["uuid"] for n in virtnet.ok("net-list", "--json").json()] == [created["uuid"]]
    # a transient network is gone once destroyed: the API answers 204, --json prints nothing
    assert virtnet.ok("net-destroy", "tmp", "--json").out == ""


def test_xml_files_are_sent_as_xml_and_dumpxml_prints_xml(
    virtnet: Virtnet, write: WriteFile
) -> None:
    virtnet.ok("net-define", write("xlab.conf", LAB_XML))
    dumped, inactive, bad = virtnet.each(
        ["net-dumpxml", "xlab"],
        ["net-dumpxml", "xlab", "--inactive"],
        ["net-define", write("bad.xml", "<network><name>a b</name></network>")],
    )
    assert dumped.out.startswith("<network") and "<name>xlab</name>" in dumped.out
    assert "macTableManager='libvirt'" in dumped.out.replace('"', "'")
    assert inactive.code == 0 and "<name>xlab</name>" in inactive.out
    # the server's XML errors name the element and its line
    assert bad.code == 1 and bad.err.startswith("error: /network/name (line 1): must be ")


def test_refusals_and_usage_errors(virtnet: Virtnet, write: WriteFile, api: httpx.Client) -> None:
    api.post("/v1/networks?start=true", json={"name": "on"}).raise_for_status()  # transient
    four_mistakes = {"name": "-x", "mtu": 1, "bridge": {"nmae": "x"}, "forward": {"mode": "tcp"}}
    missing = write("nothing-here", "x") + ".missing"
    malformed = write("m.json", '{"name": "lab",')
    commands = {
        "unknown": ["net-info", "nope"],
        "conflict": ["net-start", "on"],
        "transient": ["net-autostart", "on", "--disable"],
        "missing file": ["net-define", missing],
        "malformed": ["net-define", malformed],
        "invalid": ["net-define", write("i.json", four_mistakes)],
        "wrong token": ["net-list", "--token", "vn_not-a-token"],
        "no token": ["net-list", "--token", ""],
        "reader": ["net-define", write("lab.json", LAB), "--token", virtnet.token_for("reader")],
        "unreachable": ["net-list", "--url", "http://127.0.0.1:9"],
        "no name": ["net-info"],
        "bad url": ["net-list", "--url", "ftp://example.org"],
    }
    results = dict(zip(commands, virtnet.each(*commands.values()), strict=True))
    codes = {what: r.code for what, r in results.items()}
    usage = {"missing file", "malformed", "no name", "bad url"}
    assert codes == {what: 2 if what in usage else 1 for what in commands}, results
    assert all(r.out == "" for r in results.values())
    err = {what: r.err for what, r in results.items()}
    assert err["unknown"] == "error: network 'nope' does not exist\n"
    assert err["conflict"] == "error: network 'on' is already active\n"
    assert err["transient"] == "error: network 'on' is transient; define it to make it autostart\n"
    assert err["missing file"] == f"error: cannot read {missing}: No such file or directory\n"
    assert err["malformed"].startswith(f"error: cannot read {malformed}: it is neither XML")
    # the detail names three problems; every per-field error follows on its own line
    detail, *per_field = err["invalid"].splitlines()
    assert detail.startswith("error: ") and len(per_field) == 4
    assert "  bridge.nmae: unknown field; check its spelling against the API reference" in per_field
    assert err["wrong token"].startswith("error: the bearer token is not known")
    assert "hint: pass --token or set VIRTNET_TOKEN" in err["no token"]
    assert err["reader"] == "error: this needs the 'operator' role; your token has 'reader'\n"
    assert err["unreachable"].startswith(
        "error: cannot reach the virtnet API at http://127.0.0.1:9"
    )
    assert "hint: is the server running?" in err["unreachable"]
    assert "usage: virtnet net-info" in err["no name"] and "required: NAME" in err["no name"]
    assert "'ftp://example.org' is not an http:// or https:// URL" in err["bad url"]


def test_url_and_token_come_from_the_environment(virtnet: Virtnet) -> None:
    # every other test passes both as VIRTNET_URL and VIRTNET_TOKEN; here they are wrong or unset
    junk, default = virtnet.each(
        ["net-list"],
        ["net-list"],
        envs=[{"VIRTNET_URL": "localhost:8080"}, {"VIRTNET_URL": None, "VIRTNET_TOKEN": None}],
    )
    assert junk.code == 2 and "'localhost:8080' is not an http:// or https:// URL" in junk.err
    # http://127.0.0.1:8080 by default: nothing listens there in tests, or a server without
    # our token; either way a clear error
    assert default.code == 1
    assert "http://127.0.0.1:8080" in default.err or "VIRTNET_TOKEN" in default.err


def test_net_update_and_dhcp_leases(virtnet: Virtnet, write: WriteFile) -> None:
    doc = {
        "name": "dh",
        "bridge": {"name": "vndh0"},
        "ips": [
            {
                "address": "192.168.77.1",
                "prefix": 24,
                "dhcp": {"ranges": [{"start": "192.168.77.10", "end": "192.168.77.20"}]},
            }
        ],
    }
    virtnet.ok("net-define", write("dh.json", doc))
    element = "<host mac='52:54:00:00:00:77' ip='192.168.77.7'/>"
    out = virtnet.ok("net-update", "dh", "add-last", "ip-dhcp-host", element).out
    assert out == "Updated network dh\n"
    from_file = write("srv.xml", "<srv service='ldap' protocol='tcp'/>")
    virtnet.ok("net-update", "dh", "add-first", "dns-srv", from_file, "--config")
    shown = virtnet.ok("net-dumpxml", "dh").out
    assert "192.168.77.7" in shown and "ldap" in shown
    refused = virtnet.fails(1, "net-update", "dh", "add-last", "ip-dhcp-host", element)
    assert "already" in refused.err
    virtnet.fails(1, "net-update", "dh", "delete", "dns-txt", "<txt name='x' value='y'/>", "--live")
    # no host runs it: no leases, and the table says so
    assert table(virtnet.ok("net-dhcp-leases", "dh").out)[1] == []
    assert virtnet.ok("net-dhcp-leases", "dh", "--json").json() == []
