"""SQL tables. Alembic migrations are the only way these reach a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware on the way out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    #: null for macvtap/hostdev modes, which have no bridge
    bridge: Mapped[str | None] = mapped_column(String(15), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="inactive")
    persistent: Mapped[bool] = mapped_column(default=True)
    autostart: Mapped[bool] = mapped_column(default=False)
    #: the persistent (inactive) definition, as a user would write it back
    definition: Mapped[dict[str, Any]]
    #: the definition the network was started with; null while inactive
    live: Mapped[dict[str, Any] | None]
    subnets: Mapped[str] = mapped_column(Text, default="")
    #: the VXLAN network identifier of an overlay network, unique across the fleet
    vni: Mapped[int | None] = mapped_column(Integer, unique=True)
    revision: Mapped[int] = mapped_column(default=1)
    #: bumped at every start and stop, so a host's late report of an older run is ignored
    generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Realisation(Base):
    """One network on one host, as the host worker last reported it."""

    __tablename__ = "realisations"
    __table_args__ = (UniqueConstraint("network_id", "host"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(default=0)
    #: overlay networks: remote forwarding entries the host wrote, and a digest of the
    #: overlay state it applied (in sync when it equals the digest of the desired one)
    remote_entries: Mapped[int] = mapped_column(default=0)
    overlay_digest: Mapped[str | None] = mapped_column(String(16))
    overlay_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: the DHCP leases the host's dnsmasq holds for this network, as the host last reported
    leases: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)


class Host(Base):
    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kernel: Mapped[str] = mapped_column(String(128), default="")
    vlan_filtering: Mapped[bool] = mapped_column(default=False)
    #: the kernel makes 802.1Q VLAN devices (8021q)
    vlan_8021q: Mapped[bool] = mapped_column(default=False)
    tun: Mapped[bool] = mapped_column(default=False)
    net_admin: Mapped[bool] = mapped_column(default=False)
    #: the address overlay networks reach this host at (``virtnet worker --underlay``)
    underlay: Mapped[str | None] = mapped_column(String(45))
    underlay_mtu: Mapped[int | None]
    worker_id: Mapped[str] = mapped_column(String(64), default="")
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    #: a host.down event was sent for the current silence; cleared when it comes back
    down_reported: Mapped[bool] = mapped_column(default=False)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Domain(Base):
    """A VM or container whose network devices virtnet prepares on one host."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16), default="shut_off")
    error: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]]
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


#: the ports whose tap name is taken on their host: not failed or released ones (no device)
LIVE_TAP = "state NOT IN ('failed', 'released')"
MIGRATING = "migration IS NOT NULL"


class Port(Base):
    """One connection to a network (libvirt's virNetworkPort) and the tap that realises it."""

    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac"),
        # a failed port's tap name is free for a new port on its host (README, "Ports")
        Index(
            "uq_ports_host_tap_live",
            "host",
            "tap",
            unique=True,
            postgresql_where=text(LIVE_TAP),
            sqlite_where=text(LIVE_TAP),
        ),
        # what allocation, reports and domains look ports up by (migration 0011)
        Index("ix_ports_host_bridge", "host", "bridge"),
        Index("ix_ports_operation_id", "operation_id"),
        Index("ix_ports_domain_id", "domain_id"),
        Index(
            "ix_ports_migrating",
            "host",
            postgresql_where=text(MIGRATING),
            sqlite_where=text(MIGRATING),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: null for a domain interface of type 'bridge' (a host bridge, no virtnet network)
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domains.id", ondelete="SET NULL"))
    host: Mapped[str] = mapped_column(String(63))
    owner_name: Mapped[str] = mapped_column(String(64))
    owner_uuid: Mapped[str] = mapped_column(String(36))
    mac: Mapped[str] = mapped_column(String(17))
    tap: Mapped[str] = mapped_column(String(15))
    bridge: Mapped[str] = mapped_column(String(15))
    mac_table_manager: Mapped[str] = mapped_column(String(8), default="kernel")
    portgroup: Mapped[str | None] = mapped_column(String(64))
    #: the rest of the allocation: vlan, bandwidth, mtu, tap options, model
    spec: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="allocated")
    error: Mapped[str | None] = mapped_column(Text)
    #: false while the guest is paused: the static FDB entry is taken out
    fdb: Mapped[bool] = mapped_column(default=True)
    #: a move to another host in progress: phase, source/target host and tap, timestamps
    migration: Mapped[dict[str, Any] | None]
    #: bumped whenever the desired state changes, so late reports of older runs are ignored
    generation: Mapped[int] = mapped_column(default=1)
    #: the operation waiting for this port's next report
    operation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Operation(Base):
    """An action that touches a host: what the API returns with 202 and ?wait waits for."""

    __tablename__ = "operations"
    #: what the periodic pass looks for (overdue operations), without reading every one
    __table_args__ = (
        Index(
            "ix_operations_running",
            "created_at",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    #: ports still to report before the operation is done
    pending: Mapped[int] = mapped_column(default=0)
    #: what the action measured (a migration's switchover time)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class Event(Base):
    """A lifecycle event, written in the same transaction as the change it reports."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class HostLatency(Base):
    """A cumulative histogram of per-port plug or unplug time, as measured on one host."""

    __tablename__ = "host_latency"
    __table_args__ = (UniqueConstraint("host", "action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(16))
    #: counts per bucket of app.services.latency.BUCKETS (not cumulative), then +Inf
    buckets: Mapped[dict[str, Any]]
    total_seconds: Mapped[float] = mapped_column(default=0.0)
    count: Mapped[int] = mapped_column(default=0)


class HostIntent(Base):
    """How far each host has come: ``desired`` is bumped by every transaction that sends the
    host something, ``applied`` is the last revision the host said it reached. Apart from
    ``hosts`` so that heartbeats never wait behind a transaction holding this row."""

    __tablename__ = "host_intents"

    host: Mapped[str] = mapped_column(String(63), primary_key=True)
    desired: Mapped[int] = mapped_column(default=0)
    applied: Mapped[int] = mapped_column(default=0)
    #: when the host last fell behind (desired went ahead of applied)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: when the host's reported revision last changed
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the last full resend by the periodic pass, and how many in a row without progress
    resent_at: Mapped[datetime | None]
    resends: Mapped[int] = mapped_column(default=0)
