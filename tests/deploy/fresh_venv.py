"""A fresh virtualenv with plain `pip install .` (no extras), built once in the background.

The build starts when the session collects a test that needs it (see tests/conftest.py) and
runs while other tests do, since it mostly waits on the disk; the test waits for it to finish.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
_build: tuple[Path, subprocess.Popen[bytes]] | None = None


def start() -> None:
    global _build
    if _build is not None:
        return
    venv = Path(tempfile.mkdtemp(prefix="virtnet-venv-")) / "venv"
    # pip builds in the source tree: build a copy, so the checkout gets no build/ directory
    source = venv.parent / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "tests")
    shutil.copytree(ROOT, source, ignore=skip)
    # --no-compile: byte-compiling every dependency costs more than the install itself
    script = (
        f"{sys.executable} -m venv {venv} && "
        f"{venv}/bin/pip install -q --no-compile --disable-pip-version-check {source}"
    )
    log = open(venv.parent / "build.log", "wb")  # noqa: SIM115 - lives as long as the build
    _build = (
        venv,
        subprocess.Popen(
            ["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT, cwd=venv.parent
        ),
    )


def wait(timeout: float = 600) -> Path:
    """The venv's directory once `pip install .` has succeeded."""
    start()
    assert _build is not None
    venv, proc = _build
    rc = proc.wait(timeout=timeout)
    log = (venv.parent / "build.log").read_text(errors="replace")
    assert rc == 0, f"pip install . failed:\n{log[-3000:]}"
    return venv
