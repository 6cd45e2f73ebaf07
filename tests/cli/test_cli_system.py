"""host-list, token create in both modes, event, and what a client verb imports."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.cli.conftest import ROOT, Virtnet, add_host, table

SERVER_ONLY = ("sqlalchemy", "celery", "kombu", "fastapi", "alembic", "pyroute2", "psycopg")


def test_host_list(virtnet: Virtnet) -> None:
    add_host(virtnet.settings, "h1", age=-600)
    add_host(virtnet.settings, "h2", age=3600)
    header, rows = table(virtnet.ok("host-list").out)
    assert header[:3] == ["Name", "State", "Kernel"] and "Last seen" in header
    assert "VLAN filtering" in header and "802.1Q" in header
    assert [r[:3] for r in rows] == [["h1", "up", "6.1-test"], ["h2", "down", "6.1-test"]]
    assert [r[header.index("Revision")] for r in rows] == ["0/0", "0/0"]  # applied/desired


def test_token_create_over_the_api_or_the_local_database(virtnet: Virtnet) -> None:
    admin = virtnet.token_for("admin")
    local_env = {
        "VIRTNET_URL": None,
        "VIRTNET_TOKEN": None,
        "VIRTNET_DATABASE_URL": virtnet.settings.effective_database_url,
    }
    over_api, as_json, refused, local, local_json = virtnet.each(
        ["token", "create", "--role", "reader", "--token", admin],
        ["token", "create", "--role", "operator", "--name", "ci", "--token", admin, "--json"],
        ["token", "create", "--role", "admin"],  # the fixture's operator token: API mode
        ["token", "create", "--role", "reader"],
        ["token", "create", "--json"],
        envs=[{}, {}, {}, local_env, local_env],
    )
    assert over_api.code == 0 and over_api.out.startswith("vn_")
    created = as_json.json()
    assert created["role"] == "operator" and created["name"] == "ci"
    assert created["token"].startswith("vn_")
    assert refused.code == 1
    assert refused.err == "error: this needs the 'admin' role; your token has 'operator'\n"
    assert local.code == 0 and local.out.startswith("vn_")
    assert local_json.code == 2 and "--json needs the API" in local_json.err

    assert virtnet("host-list", "--token", local.out.strip()).code == 0


def test_client_verbs_load_no_server_modules(virtnet: Virtnet) -> None:
    check = (
        "import sys\n"
        "from app.cli.main import main\n"
        "code = main(['net-list', '--all'])\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_ONLY!r}))\n"
        "print(code, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT,
        env=virtnet.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr


def test_event_loop_prints_events_as_they_happen(virtnet: Virtnet, api: httpx.Client) -> None:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "event", "--loop", "--timeout", "2"],
        cwd=ROOT,
        env=virtnet.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the stream starts at the newest event when the client connects: keep making events
    n = 0
    while watcher.poll() is None and n < 40:
        api.post("/v1/networks", json={"name": f"e{n}"}).raise_for_status()
        n += 1
        time.sleep(0.15)
    out, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 0 and err == "event loop timed out\n"
    lines = out.splitlines()
    assert len(lines) >= 2, out
    numbers = [int(line.split("for network e", 1)[1].split(":")[0]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + len(lines)))  # in order, none missed
    assert all(line.startswith("event 'network.defined' for network e") for line in lines)
    assert "uuid=" in lines[0]


class _Canned(BaseHTTPRequestHandler):
    """Answers GET /v1/events with the status, type and body the test put on the server."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, content_type, body = self.server.canned  # type: ignore[attr-defined]
        self.server.last_event_ids.append(self.headers.get("Last-Event-ID"))  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.last_event_ids = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_event_stream_parsing_and_a_server_without_events(
    virtnet: Virtnet, canned: ThreadingHTTPServer
) -> None:
    url = f"http://127.0.0.1:{canned.server_address[1]}"
    stream = (
        "retry: 1000\n\n"
        ": keep-alive\n\n"
        "id: 7\nevent: host.down\n"
        'data: {"id": 7, "kind": "host.down", "subject": "host/h1", "time": "t",\n'
        'data:  "data": {"last_seen": "t0", "error": null}}\n\n'
        "id: 8\nevent: note\ndata: plain text\n\n"
    )
    problem = {"type": "about:blank", "title": "Not found", "status": 404, "detail": "Not Found"}
    canned.canned = (200, "text/event-stream", stream.encode())  # type: ignore[attr-defined]
    looped, first = virtnet.each(
        ["event", "--loop", "--timeout", "1.5", "--url", url], ["event", "--json", "--url", url]
    )
    canned.canned = (404, "application/problem+json", json.dumps(problem).encode())  # type: ignore[attr-defined]
    missing = virtnet("event", "--url", url)

    lines = looped.out.splitlines()
    assert lines[:2] == ["event 'host.down' for host h1: last_seen=t0", "event 'note': plain text"]
    assert looped.code == 0 and looped.err == "event loop timed out\n"
    # the server ended the stream: the client came back after a second, from the last id
    assert "8" in canned.last_event_ids  # type: ignore[attr-defined]
    assert first.code == 0 and len(first.out.splitlines()) == 1  # without --loop: one event
    assert first.json() == {
        "id": "7",
        "event": "host.down",
        "data": {
            "id": 7,
            "kind": "host.down",
            "subject": "host/h1",
            "time": "t",
            "data": {"last_seen": "t0", "error": None},
        },
    }
    assert missing.code == 1
    assert missing.err.startswith(f"error: the virtnet API at {url} has no event stream")
