"""The client verbs of `virtnet`, registered on its subparsers (after the server commands).

The verbs' modules import the shared machinery in app.cli.client; this module imports them.
"""

from __future__ import annotations

from typing import Any

from app.cli import client_domains, client_networks, client_system
from app.cli.client import Verbs


def add_commands(sub: Any) -> None:
    """Register the client verbs on `virtnet`'s subparsers."""
    verbs = Verbs(sub)
    client_networks.register(verbs)
    client_domains.register(verbs)
    client_system.register(verbs)
