"""Every verb that starts an operation exits 1 when the answer says it did not happen, also
with --no-wait. A real server answers a request without ?wait before any host reported, so
an operation already ended `failed` or `refused` there comes from this stub (a report that
beat the answer, or a server that finishes the work itself)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.cli.conftest import Virtnet

WHY = "vnet0 (52:54:00:00:00:01): bridge nosuchbr0 does not exist on this host"


class Ended(BaseHTTPRequestHandler):
    """Answers every action 202 with an operation that already ended: `refused` for an
    unplug (a tap in use), `failed` for the rest."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        refused = self.command == "DELETE" or self.path.split("?")[0].endswith("/stop")
        body = json.dumps(
            {
                "id": "op-1",
                "kind": "test",
                "target": self.path.split("?")[0],
                "state": "refused" if refused else "failed",
                "error": "tap vnet0 is in use" if refused else WHY,
            }
        ).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[Virtnet]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ended)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Virtnet(f"http://127.0.0.1:{server.server_port}", None, "t")  # type: ignore[arg-type]
    server.shutdown()


@pytest.mark.parametrize(
    ("verb", "state"),
    [
        (["start", "vm1"], "failed"),
        (["destroy", "vm1"], "refused"),
        (["suspend", "vm1"], "failed"),
        (["resume", "vm1"], "failed"),
        (["undefine", "vm1", "--force"], "refused"),
        (["attach-interface", "vm1", "--type", "network", "--source", "lab"], "failed"),
        (["detach-interface", "vm1", "--mac", "52:54:00:00:00:01"], "refused"),
        (["migrate", "vm1", "h2"], "failed"),
        (["net-port-delete", "lab", "p1"], "refused"),
    ],
)
def test_an_operation_that_ended_unasked_for_exits_1_without_waiting(
    stub: Virtnet, verb: list[str], state: str
) -> None:
    result = stub.fails(1, *verb, "--no-wait")
    assert result.out == ""
    assert result.err.startswith("error: operation op-1 ") and f" {state}: " in result.err
    assert ("in use" if state == "refused" else "nosuchbr0") in result.err
    # --json still prints what the server answered
    printed = stub(*verb, "--no-wait", "--json")
    assert printed.code == 1 and printed.json()["state"] == state
