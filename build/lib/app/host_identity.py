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

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from app.config import Settings

SIGNATURE = "signature"
SECRET_FILE = "report-secret"


def host_key(secret: str, host: str) -> str:
    label = f"virtnet host key\0{host}".encode()
    return hmac.new(secret.encode(), label, hashlib.sha256).hexdigest()


def _digest(key: str, task: str, kwargs: dict[str, Any]) -> str:
    payload = json.dumps([task, kwargs], sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign(key: str, task: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, SIGNATURE: _digest(key, task, kwargs)}


def verified_host(secret: str, task: str, kwargs: dict[str, Any]) -> str | None:
    """The host that signed this message if it is the host the message names, else None."""
    claims = {k: v for k, v in kwargs.items() if k != SIGNATURE}
    signature, host = kwargs.get(SIGNATURE), claims.get("host")
    if not isinstance(signature, str) or not isinstance(host, str):
        return None
    expected = _digest(host_key(secret, host), task, claims)
    return host if hmac.compare_digest(expected, signature) else None


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
