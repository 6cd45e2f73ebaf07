"""Which host a report really comes from: every host worker signs what it sends.

A broker cannot tell a consumer who pushed a message (Redis ACL users limit which keys a
client may touch, not what it claims inside a message), so identity travels with the message:
each host worker holds its own key, derived from the control plane's report secret and the host
name (HMAC-SHA256), and signs each report and heartbeat with it. The control worker, which
holds the secret, recomputes the key of the host a message claims and drops the message when
the signature does not match. A host worker therefore can speak only for itself, and never sees
the secret or another host's key. `virtnet host-key NAME` prints a host's key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from app.config import Settings
from app.messages.signing import SIGNATURE, host_key, sign, verified_host

__all__ = ["SIGNATURE", "host_key", "sign", "verified_host"]

SECRET_FILE = "report-secret"


def report_secret(settings: Settings, *, create: bool = False) -> str | None:
    """VIRTNET_REPORT_SECRET, else the one kept in the state directory (made on first start
    by the control plane when ``create``)."""
    if settings.report_secret:
        return settings.report_secret
    path = settings.state_dir / SECRET_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    _create_once(path, secrets.token_hex(32))
    return path.read_text().strip()


def _create_once(path: Path, value: str) -> None:
    """Write the file whole, once: concurrent starters all end up reading the same secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def own_host_key(settings: Settings, host: str) -> str | None:
    """This host worker's key: VIRTNET_HOST_KEY, else derived from a secret on this machine."""
    if settings.host_key:
        return settings.host_key
    secret = report_secret(settings)
    return host_key(secret, host) if secret else None
