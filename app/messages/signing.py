"""The signature every host worker puts on what it sends (HMAC-SHA256 with its host key).

Pure: the key handling that needs settings and files is in app/host_identity.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE = "signature"


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
