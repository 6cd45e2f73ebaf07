"""Isolation and bandwidth end to end: API, control worker, a host worker in a namespace,
read back from the kernel with `bridge -json` and `tc`."""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from tests.cluster import Cluster, wait_for
from tests.kernel import readback
from tests.kernel.test_kernel_bandwidth import htb, kinds
from tests.kernel.test_kernel_isolation import isolated_flags

BR = "vnqos0"
GOLD, OPEN = "52:54:00:16:00:01", "52:54:00:16:00:02"


def interfaces(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.api.get("/v1/domains/vm").json()["interfaces"]


def test_isolation_and_bandwidth_follow_plug_live_changes_and_reconcile(
    cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    api, ns = cluster.api, two_hosts["h1"]
    network = {
        "name": "qos",
        "bridge": {"name": BR, "stp": False},
        "bandwidth": {"inbound": {"average": 1000, "peak": 1500}},
        "port_isolated": True,
        "portgroups": [
            {
                "name": "gold",
                "bandwidth": {
                    "inbound": {"average": 800, "floor": 600},
                    "outbound": {"average": 400},
                },
            }
        ],
    }
    assert api.post("/v1/networks", json=network).status_code == 201
    assert api.post("/v1/networks/qos/start").status_code == 200
    cluster.wait_network("qos")
    wait_for(lambda: "1:1" in htb(ns, BR), what="network limit on the bridge")
    domain = {
        "name": "vm",
        "host": "h1",
        "interfaces": [
            {"type": "network", "source": {"network": "qos", "portgroup": "gold"}, "mac": GOLD},
            {"type": "network", "source": {"network": "qos"}, "mac": OPEN, "port_isolated": False},
        ],
    }
    assert api.post("/v1/domains", json=domain).status_code == 201
    op = api.post("/v1/domains/vm/start?wait=20").json()
    assert op["state"] == "succeeded", op
    gold, open_ = interfaces(cluster)
    gold_tap, open_tap = gold["actual"]["tap"], open_["actual"]["tap"]
    assert gold["actual"]["bandwidth"]["inbound"] == {"average": 800, "floor": 600}
    assert gold["actual"]["class_id"] == 3
    assert gold["actual"]["outbound_limit"] in ("ifb", "police")
    assert isolated_flags(ns)[gold_tap] is True and isolated_flags(ns)[open_tap] is False
    assert htb(ns, gold_tap)["1:2"] == ("1:1", 800_000, 800_000)
    assert htb(ns, BR)["1:3"] == ("1:1", 600_000, 1_500_000)
    assert htb(ns, BR)["1:2"][1] == 900_000  # peak minus the floors, as libvirt

    # floor oversubscription is refused before anything is reserved
    extra = {
        "type": "network",
        "source": {"network": "qos"},
        "mac": "52:54:00:16:00:03",
        "bandwidth": {"inbound": {"average": 10, "floor": 901}},
    }
    r = api.post("/v1/domains/vm/interfaces", json=extra)
    assert r.status_code == 409 and "would overcommit peak=1500" in r.json()["detail"]

    # a live change: same tap, new limits, new floor, isolation lifted
    index = readback.link(ns, gold_tap)["ifindex"]
    changed = {
        **domain["interfaces"][0],
        "port_isolated": False,
        "bandwidth": {"inbound": {"average": 700, "floor": 900}},
    }
    r = api.put(f"/v1/domains/vm/interfaces/{GOLD}?wait=20", json=changed)
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert readback.link(ns, gold_tap)["ifindex"] == index
    assert htb(ns, gold_tap)["1:2"] == ("1:1", 700_000, 700_000)
    assert "ffff:" not in kinds(ns, gold_tap)  # no outbound limit any more
    assert htb(ns, BR)["1:3"] == ("1:1", 900_000, 1_500_000)
    assert isolated_flags(ns)[gold_tap] is False
    # other parts of a plugged interface do not change live
    r = api.put(f"/v1/domains/vm/interfaces/{GOLD}", json={**changed, "mtu": 9000})
    assert r.status_code == 409 and "detach" in r.json()["detail"]

    # reconcile: a restarted worker puts back qdiscs someone removed
    subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", gold_tap, "root"], check=True
    )
    cluster.kill("h1", signal.SIGKILL)
    cluster.start_host("h1", ns)
    wait_for(lambda: "1:2" in htb(ns, gold_tap), what=f"qdiscs repaired\n{cluster.logs()}")
    wait_for(lambda: htb(ns, BR).get("1:3") == ("1:1", 900_000, 1_500_000), what="floor kept")

    # everything goes with the ports
    assert api.post("/v1/domains/vm/stop?wait=20").json()["state"] == "succeeded"
    assert set(htb(ns, BR)) == {"1:1", "1:2"}
    assert not [n for n in readback.links(ns) if n.startswith("vnifb")]
