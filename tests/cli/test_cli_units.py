"""The client's pure parts, in process: file detection, SSE parsing, tables, option types."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.cli.client import http_url, positive_seconds
from app.cli.client_api import BadInput, ServerEvent, api_path, parse_events, read_document
from app.cli.client_output import print_table
from app.cli.client_system import event_line


def test_documents_are_told_apart_by_content(tmp_path: Path) -> None:
    xml = tmp_path / "n.json"  # the name says JSON; the content is XML
    xml.write_bytes(b"\xef\xbb\xbf\n  <network/>")
    assert read_document(str(xml)).content_type == "application/xml"
    cases = {"[1]": "must be an object", " \n": "the file is empty", "nul": "nor valid JSON"}
    for content, says in cases.items():
        path = tmp_path / "f"
        path.write_text(content)
        with pytest.raises(BadInput, match=says) as refused:
            read_document(str(path))
        assert refused.value.exit_code == 2


def test_sse_parsing_follows_the_eventsource_rules() -> None:
    lines = [
        "retry: 1000", "", ": comment", "id: 1", "event: a", "data: {\"x\":", "data: 1}", "",
        "data:no space", "", "id", "event: b", "data: 2", "",
    ]  # fmt: skip
    events = list(parse_events(iter(lines)))
    assert [(e.id, e.kind, e.data) for e in events] == [
        ("1", "a", {"x": 1}),
        ("1", "message", "no space"),  # the last id carries over
        ("", "b", 2),
    ]


def test_event_lines() -> None:
    event = ServerEvent(kind="domain.started", id="3")
    event.data_lines = ['{"kind": "domain.started", "subject": "domain/vm1", "data": {"a": [1]}}']
    assert event_line(event) == "event 'domain.started' for domain vm1: a=[1]"
    event.data_lines = ["[1, 2]"]
    assert event_line(event) == "event 'domain.started': [1, 2]"


def test_tables_align_columns(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["Name", "On"], [["a-long-name", True], ["b", None]])
    assert capsys.readouterr().out.splitlines() == [
        " Name          On",
        "-------------------",
        " a-long-name   yes",
        " b             -",
    ]


def test_option_values_and_paths() -> None:
    assert positive_seconds("0.5") == 0.5
    for bad in ("0", "-1", "inf", "nan", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_seconds(bad)
    assert http_url("https://virtnet.example:8443/") == "https://virtnet.example:8443/"
    for bad in ("localhost:8080", "http://", "http://[::1", "ftp://host"):
        with pytest.raises(argparse.ArgumentTypeError):
            http_url(bad)
    assert api_path("networks", "../tokens") == "/v1/networks/..%2Ftokens"
    assert api_path("domains", "vm", "interfaces", "52:54:00:00:00:01").endswith("00:01")


def test_help_lists_both_kinds_of_command_and_the_token_create_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.main import build_parser

    monkeypatch.delenv("VIRTNET_URL", raising=False)
    monkeypatch.delenv("VIRTNET_TOKEN", raising=False)
    parser = build_parser()
    listing = parser.format_help()
    for verb in ("serve", "net-define", "net-port-create", "attach-interface", "event"):
        assert f"    {verb}" in listing
    token = parser.parse_args(["token", "create"])  # the local mode's options are unchanged
    assert (token.role, token.name, token.url, token.token) == ("operator", "", None, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["token", "create", "--help"])
    documented = " ".join(capsys.readouterr().out.split())
    assert "when --url, --token, VIRTNET_URL or VIRTNET_TOKEN is given" in documented
    assert "local database" in documented
