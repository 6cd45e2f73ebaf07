"""The embedded default broker: a private redis-server on a unix socket in the state directory.

Chosen by measurement (bench/broker.py, docs/benchmarks.md): kombu's file-system transport
crashed its consumers on half-written message files (kombu #1551) and polled at idle. The
socket is only reachable by root (mode 600) and needs no password; host workers inside a
network namespace reach it too, since a unix socket lives in the file system, not the netns.
Messages survive a restart of the broker: the append-only file is synced every second.
"""

from __future__ import annotations

import shutil

from app.config import ConfigError, Settings

#: sun_path in struct sockaddr_un holds 108 bytes including the final NUL
MAX_SOCKET_PATH = 107


def redis_server_argv(settings: Settings) -> list[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise ConfigError(
            "redis-server is not installed (scripts/setup installs Debian's redis-server), "
            "or set VIRTNET_BROKER_URL to a broker of your own"
        )
    sock = settings.embedded_broker_socket
    if len(str(sock).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"VIRTNET_STATE_DIR={str(settings.state_dir)!r}: the broker socket {sock} would be "
            f"longer than {MAX_SOCKET_PATH} bytes; use a shorter state directory"
        )
    folder = sock.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return [
        exe,
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "600",
        "--dir", str(folder),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        # its lowest timer rate: nothing here expires keys, and each tick costs idle CPU
        "--hz", "1",
        "--daemonize", "no",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip
