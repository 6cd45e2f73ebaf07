"""A revoked token's open event stream ends within a second."""

from __future__ import annotations

import threading
import time

import httpx

from tests.cluster import Cluster


def test_revoking_a_token_ends_its_open_stream(cluster: Cluster) -> None:
    base = cluster.serve_http()
    made = cluster.api.post("/v1/tokens", json={"role": "reader", "name": "watcher"}).json()
    ended = threading.Event()
    lines: list[str] = []

    def follow() -> None:
        headers = {"Authorization": f"Bearer {made['token']}"}
        with (
            httpx.Client(timeout=30) as client,
            client.stream("GET", f"{base}/v1/events", headers=headers) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lines, "the stream did not open"
    assert cluster.api.post("/v1/networks", json={"name": "before"}).status_code == 201
    time.sleep(0.5)
    assert not ended.is_set()
    assert cluster.api.delete(f"/v1/tokens/{made['id']}").status_code == 204
    revoked_at = time.monotonic()
    assert ended.wait(5), "the stream outlived its token"
    assert time.monotonic() - revoked_at < 1.2
    assert any("network.defined" in line for line in lines)
    assert "event: revoked" in lines
