"""Real PostgreSQL and Redis for tests: a fresh database and Redis db per test session on the
shared servers, and servers of its own for a test that kills them."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from app.db import get_engine

ADMIN_PG = os.environ.get("VIRTNET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VIRTNET_TEST_REDIS", "redis://127.0.0.1:6379")
TABLES = (
    "host_intents",
    "host_latency",
    "events",
    "operations",
    "ports",
    "domains",
    "realisations",
    "networks",
    "hosts",
    "tokens",
)


def create_pg_database() -> tuple[str, str]:
    """A new empty database; returns (its SQLAlchemy URL, its name)."""
    name = f"virtnet_t_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", name


def drop_pg_database(url: str, name: str) -> None:
    get_engine(url).dispose()
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_test_url() -> str:
    # A random logical database keeps this run's queues apart from anything else on the server.
    return f"{REDIS_URL}/{secrets.randbelow(15) + 1}"


def empty_redis(url: str) -> None:
    """Queues left by an earlier test must not reach this test's workers."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def empty_tables(url: str, tables: tuple[str, ...] = TABLES) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


# -- servers a test owns, so that it may kill them (never the shared ones)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A private redis-server on a free TCP port with its data (AOF on) in ``workdir``.

    ``kill()`` is `kill -9`; ``start()`` again comes back on the same port from the same data.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        _wait_until(self.ping, 20, f"redis-server on {self.port}\n{self.log()}")

    def ping(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
            self.proc = None

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text()[-2000:] if path.exists() else ""


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgresServer:
    """A private PostgreSQL cluster (initdb in a fresh directory, a free port, trust auth).

    As root the cluster belongs to the ``postgres`` user (initdb refuses root). ``stop()``
    with mode ``immediate`` is a crash from the clients' point of view; ``start()`` recovers.
    fsync is off: the machine does not crash, only the server, so nothing committed is lost.
    """

    def __init__(self, port: int | None = None) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bindir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="virtnet-pg-"))
        self.data = self.root / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.root, self._user)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/virtnet"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        return subprocess.run(
            [*prefix, *argv], check=check, capture_output=True, text=True, cwd=self.root
        )

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        with open(self.data / "postgresql.conf", "a") as handle:
            handle.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self.start()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE virtnet")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return result.returncode == 0

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
