"""Settings from VIRTNET_* environment variables, validated once at start."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.config_basics import ConfigError, parse_listen

__all__ = ["ConfigError", "Settings", "get_settings", "parse_listen"]

DEFAULT_STATE_DIR = Path("/var/lib/virtnet")
#: measured with bench/e2e.py's 16-client row on a 2-core host (docs/benchmarks.md)
DEFAULT_API_WORKERS = 2
DEFAULT_DB_POOL_SIZE, DEFAULT_DB_MAX_OVERFLOW = 10, 10
DEFAULT_DB_LOCK_TIMEOUT = 10.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIRTNET_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR
    database_url: str = ""
    broker_url: str = ""
    host_name: str = Field(default_factory=socket.gethostname)
    listen: str = "127.0.0.1:8080"
    #: uvicorn worker processes of `virtnet api` / `virtnet serve` (docs/benchmarks.md,
    #: "Defaults for 16 clients", measured the default)
    api_workers: int = Field(default=DEFAULT_API_WORKERS, ge=1, le=64)
    #: PostgreSQL connections each process keeps open (SQLAlchemy's pool_size) ...
    db_pool_size: int = Field(default=DEFAULT_DB_POOL_SIZE, ge=1, le=200)
    #: ... and how many more it opens under a burst, closed when it passes (max_overflow).
    #: Every API worker, the control worker and `virtnet` commands each have their own pool:
    #: keep api_workers * (pool + overflow) + the control worker's under the server's
    #: max_connections (100 by default).
    db_max_overflow: int = Field(default=DEFAULT_DB_MAX_OVERFLOW, ge=0, le=500)
    #: how long a statement waits for a row (or advisory) lock another transaction holds
    #: before it gives up (PostgreSQL's lock_timeout): a stuck transaction gets a 503 that
    #: says so, not requests that hang with it
    db_lock_timeout_seconds: float = Field(default=DEFAULT_DB_LOCK_TIMEOUT, gt=0, le=3600)
    bootstrap_token: str | None = None
    #: the network namespace this machine's host worker works in (`virtnet serve`)
    netns: str | None = None
    #: the address overlay networks reach this host's worker at (`virtnet worker --underlay`)
    underlay: str | None = None
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=3600)
    missed_heartbeats: int = Field(default=3, ge=1, le=1000)
    #: how often the control worker resends the whole desired state to hosts that lag
    resync_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: a host operation still running this long after it began fails, naming the silent host
    operation_deadline_seconds: float = Field(default=60.0, gt=0, le=86400)
    broker_poll_seconds: float = Field(default=0.01, gt=0, le=10)
    #: the control plane's secret from which each host's report key is derived
    report_secret: str | None = Field(default=None, min_length=16)
    #: a host worker's own key (`virtnet host-key NAME` prints it)
    host_key: str | None = Field(default=None, min_length=16)
    #: when set, GET /metrics wants `Authorization: Bearer <this>`
    metrics_token: str | None = Field(default=None, min_length=16)

    @field_validator("report_secret", "host_key", "metrics_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        schemes = {"redis", "rediss", "redis+socket", "filesystem", "memory"}
        if value and urlsplit(value).scheme not in schemes:
            raise ValueError("must be a redis://, redis+socket://, filesystem:// or memory:// URL")
        return value

    @field_validator("underlay")
    @classmethod
    def _underlay(cls, value: str | None) -> str | None:
        import ipaddress

        if not value:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, value: str) -> str:
        from app.conf.common import HOST_NAME_RE

        if not HOST_NAME_RE.fullmatch(value):
            raise ValueError("must be 1-63 characters of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'virtnet.db'}"

    @property
    def embedded_broker_socket(self) -> Path:
        """The unix socket of the private redis-server `virtnet serve` runs by default."""
        return self.state_dir / "broker" / "redis.sock"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"redis+socket://{self.embedded_broker_socket}"


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        env = f"VIRTNET_{field.upper()}"
        raise ConfigError(f"{env}={os.environ.get(env, '')!r}: {first['msg']}") from None
