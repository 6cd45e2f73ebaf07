"""Lifecycle events over Server-Sent Events: each once, in order, replayable after a reconnect."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from typing import Any

import httpx

from tests.cluster import Cluster, wait_for


def read_events(response: httpx.Response, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the test closes the stream under the reader
        _read_events(response, into)


def _read_events(response: httpx.Response, into: list[dict[str, Any]]) -> None:
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                into.append(
                    {
                        **json.loads(event["data"]),
                        "sse_id": event.get("id"),
                        "sse_event": event.get("event"),
                    }
                )
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value


def test_every_kind_arrives_once_in_order_and_replays(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    base = cluster.serve_http()
    headers = dict(cluster.api.headers)
    got: list[dict[str, Any]] = []
    client = httpx.Client(timeout=None)
    stream = client.stream("GET", f"{base}/v1/events", headers=headers)
    response = stream.__enter__()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    reader = threading.Thread(target=read_events, args=(response, got), daemon=True)
    reader.start()
    try:
        api = cluster.api
        api.post(
            "/v1/networks",
            json={
                "name": "ev",
                "bridge": {"name": "vnev0", "stp": False, "mac_table_manager": "libvirt"},
            },
        )
        api.post("/v1/networks/ev/start")
        cluster.wait_network("ev")
        api.post(
            "/v1/domains",
            json={
                "name": "d",
                "host": "h1",
                "interfaces": [
                    {"type": "network", "source": {"network": "ev"}, "mac": "52:54:00:ee:00:01"}
                ],
            },
        )
        for action in ("start", "suspend", "resume", "stop"):
            assert api.post(f"/v1/domains/d/{action}?wait=20").json()["state"] == "succeeded"
        api.post(
            "/v1/domains",
            json={
                "name": "bad",
                "host": "h1",
                "interfaces": [{"type": "bridge", "source": {"bridge": "nosuchbr0"}}],
            },
        )
        assert api.post("/v1/domains/bad/start?wait=20").json()["state"] == "failed"
        wait_for(
            lambda: api.get("/v1/domains/bad").json()["status"]["state"] == "shut_off",
            what="rolled-back start settled",
        )
        api.post("/v1/networks/ev/stop")
        api.delete("/v1/networks/ev")
        cluster.kill("h2", signal.SIGKILL)
        wait_for(
            lambda: any(e["kind"] == "host.down" for e in got), timeout=10, what="host.down event"
        )
        cluster.start_host("h2", two_hosts["h2"])
        wait_for(lambda: any(e["kind"] == "host.up" for e in got), timeout=15, what="host.up event")
        wait_for(lambda: sum(e["kind"] == "port.unplugged" for e in got) >= 2, what="unplug events")
    finally:
        stream.__exit__(None, None, None)
        client.close()
    everything = list(got)
    realised = [e for e in got if e["kind"] == "network.realised"]
    assert {(e["data"]["host"], e["data"]["state"]) for e in realised} >= {
        ("h1", "degraded"),
        ("h2", "degraded"),
    }
    # hosts report in any order, and under load a heartbeat can be late: only h2's silence
    # and the lifecycle itself are part of this script
    got = [
        e
        for e in got
        if e["kind"] != "network.realised"
        and (not e["kind"].startswith("host.") or e["subject"] == "host/h2")
    ]
    kinds = [e["kind"] for e in got]
    ids = [e["id"] for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "in order, each once"
    assert all(e["sse_event"] == e["kind"] and e["sse_id"] == str(e["id"]) for e in got)
    expected = [
        "network.defined",
        "network.started",
        "domain.defined",
        "port.plugged",
        "domain.started",
        "domain.suspended",
        "domain.resumed",
        "port.unplugged",
        "domain.stopped",
        "domain.defined",
        "port.failed",
        "port.unplugged",
        "domain.stopped",
        "network.stopped",
        "network.undefined",
        "host.down",
        "host.up",
    ]
    assert kinds == expected, kinds
    by_kind = {e["kind"]: e for e in got}
    assert by_kind["network.started"]["subject"] == "network/ev"
    assert by_kind["port.plugged"]["data"]["tap"] == "vnet0"
    assert "nosuchbr0" in by_kind["port.failed"]["data"]["error"]
    assert by_kind["port.failed"]["data"]["error_code"] == "bridge_missing"
    assert by_kind["host.down"]["subject"] == "host/h2"

    # a client that saw up to the domain start reconnects and gets exactly the rest
    seen = ids[kinds.index("domain.started")]
    with httpx.Client(timeout=30) as again:
        replay: list[dict[str, Any]] = []
        with again.stream(
            "GET",
            f"{base}/v1/events",
            params={"limit": sum(e["id"] > seen for e in everything)},
            headers={**headers, "Last-Event-ID": str(seen)},
        ) as r:
            read_events(r, replay)
    replayed = [e["id"] for e in replay if e["id"] in ids]
    assert replayed == ids[ids.index(seen) + 1 :]


def test_events_need_a_token(cluster: Cluster) -> None:
    r = cluster.api.get("/v1/events", headers={"Authorization": ""})
    assert r.status_code == 401
    r = cluster.api.get("/v1/events?token=vn_wrong", headers={"Authorization": ""})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem")
