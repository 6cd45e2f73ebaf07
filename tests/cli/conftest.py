"""The real `virtnet` process against the real API over real HTTP (uvicorn in a thread)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.api.main import create_app
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Host, utcnow
from app.services import tokens
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests import services
from tests.cluster import ROOT, wait_for


def make_token(settings: Settings, role: str) -> str:
    with get_sessionmaker(settings.effective_database_url)() as session:
        _, secret = tokens.create(Ctx(session, Outbox(None), settings), role=role)
    return secret


def add_host(settings: Settings, name: str, *, age: float = 0) -> None:
    """A host row as a worker's heartbeat leaves it; ``age`` seconds old (old ones are down)."""
    with get_sessionmaker(settings.effective_database_url)() as session:
        session.add(Host(name=name, kernel="6.1-test", last_seen=utcnow() - timedelta(seconds=age)))
        session.commit()


def serve_in_thread(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The app on a free port, as `virtnet api` serves it; returns its URL."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn started")
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server, thread


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Virtnet:
    """Runs `virtnet` as a child process: ``VIRTNET_URL`` and an operator token by default."""

    url: str
    settings: Settings
    token: str

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
        base: dict[str, str | None] = {"VIRTNET_URL": self.url, "VIRTNET_TOKEN": self.token}
        for key, value in {**base, **overrides}.items():
            if value is not None:
                env[key] = value
        return env

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 30, **env: str | None
    ) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            cwd=ROOT,
            env=self.env(**env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def each(
        self, *commands: list[str], envs: list[dict[str, str | None]] | None = None
    ) -> list[Result]:
        """Independent commands at once (each is a process start): results in their order."""
        envs = envs or [{} for _ in commands]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda a, e: self(*a, **e), commands, envs))

    def token_for(self, role: str) -> str:
        return make_token(self.settings, role)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.code == 0, f"virtnet {' '.join(args)} -> {result.code}\n{result.err}"
        return result

    def fails(self, code: int, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.code == code, f"virtnet {' '.join(args)} -> {result.code}\n{result.err}"
        assert result.err.startswith(("error: ", "usage: ")), result.err
        return result


@pytest.fixture(scope="session")
def cli_settings(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=pg_url,
        broker_url=redis_url,
        state_dir=tmp_path_factory.mktemp("cli"),
        heartbeat_seconds=0.5,
        missed_heartbeats=4,
    )


@pytest.fixture(scope="session")
def api_url(cli_settings: Settings) -> Iterator[str]:
    """One API server for the whole session; each test starts from empty tables."""
    url, server, thread = serve_in_thread(cli_settings)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def virtnet(api_url: str, cli_settings: Settings) -> Virtnet:
    services.empty_tables(cli_settings.effective_database_url)
    services.empty_redis(cli_settings.effective_broker_url)
    return Virtnet(api_url, cli_settings, make_token(cli_settings, "operator"))


WriteFile = Callable[[str, "str | dict[str, Any]"], str]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Writes a file (a dict as JSON) into the test's directory and returns its path."""

    def write_file(name: str, content: str | dict[str, Any]) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write_file


def table(out: str) -> tuple[list[str], list[list[str]]]:
    """A virsh-style table's header and rows (columns are 3 spaces apart)."""
    lines = out.splitlines()
    assert set(lines[1]) == {"-"}, out
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], split[2:]


def fields(out: str) -> dict[str, str]:
    """``Label:   value`` lines as a dict."""
    pairs = (line.split(":", 1) for line in out.splitlines())
    return {label: value.strip() for label, value in pairs}


@pytest.fixture
def api(virtnet: Virtnet) -> Iterator[httpx.Client]:
    """The API itself (admin), to arrange what a test needs without starting processes."""
    secret = make_token(virtnet.settings, "admin")
    with httpx.Client(base_url=virtnet.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        yield c
