"""Long-running processes put what they hold once started out of the cyclic collector's
reach (app.supervisor.freeze_startup_objects): a full collection then walks only what was
made since, not the ~130,000 objects of modules, the app and the ORM (bench/e2e.py p99)."""

from __future__ import annotations

import subprocess
import sys

from tests.cluster import ROOT

PROBE = """
import gc
import app.api.main, app.control, workers.main  # what an API or a worker holds
from app.supervisor import freeze_startup_objects
before = len(gc.get_objects())
freeze_startup_objects()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_what_a_process_holds_at_start_is_no_longer_walked_by_the_collector() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    before, frozen, left = (int(n) for n in out.split())
    assert before > 50_000  # the imports alone
    assert frozen >= before * 0.9
    assert left < 1_000  # what a full collection still walks
