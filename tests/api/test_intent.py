"""Durable intent in the database, on PostgreSQL and SQLite: each transaction that sends a
host something bumps its desired revision; the host's reports set the applied one; the
periodic pass picks the hosts that lag (app.services.intent)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.celery_app import APPLY_BUNDLE, APPLY_PORTS, CONTROL_QUEUE, RECONCILE_HOST, host_queue
from app.config import Settings
from app.db import get_sessionmaker
from app.models import HostIntent, Network, Realisation, utcnow
from app.services import intent
from app.services.context import Ctx
from app.services.outbox import Outbox


class Sent(list[tuple[str, dict[str, Any], str]]):
    def __call__(self, name: str, kwargs: dict[str, Any], queue: str) -> None:
        self.append((name, kwargs, queue))


@pytest.fixture
def session(api_settings: Settings) -> Iterator[Session]:
    with get_sessionmaker(api_settings.effective_database_url)() as s:
        yield s


def ctx_for(session: Session, settings: Settings, sent: Sent) -> Ctx:
    return Ctx(db=session, outbox=Outbox(sent), settings=settings)


def test_one_bundle_per_host_per_transaction_in_the_order_added(
    session: Session, api_settings: Settings
) -> None:
    sent = Sent()
    ctx = ctx_for(session, api_settings, sent)
    ctx.outbox.add(APPLY_PORTS, {"ports": [1]}, host_queue("h2"))
    ctx.outbox.add("virtnet.control.x", {}, CONTROL_QUEUE)
    ctx.outbox.add(APPLY_PORTS, {"ports": [2]}, host_queue("h1"))
    ctx.outbox.add(APPLY_PORTS, {"ports": [3]}, host_queue("h2"))
    ctx.commit(conflict="")
    assert sent == [
        (
            APPLY_BUNDLE,
            {
                "base": 0,
                "revision": 1,
                "full": False,
                "steps": [[APPLY_PORTS, {"ports": [1]}], [APPLY_PORTS, {"ports": [3]}]],
            },
            host_queue("h2"),
        ),
        ("virtnet.control.x", {}, CONTROL_QUEUE),
        (
            APPLY_BUNDLE,
            {"base": 0, "revision": 1, "full": False, "steps": [[APPLY_PORTS, {"ports": [2]}]]},
            host_queue("h1"),
        ),
    ]
    sent.clear()
    ctx.outbox.add(APPLY_PORTS, {"ports": [4]}, host_queue("h2"))
    ctx.commit(conflict="")
    assert [(kw["base"], kw["revision"]) for _, kw, _ in sent] == [(1, 2)]
    assert intent.status(ctx, "h1")[:2] == (1, 0)
    assert intent.status(ctx, "h2")[:2] == (2, 0)


def test_a_full_bundle_carries_the_revision_its_snapshot_was_read_at(
    session: Session, api_settings: Settings
) -> None:
    sent = Sent()
    ctx = ctx_for(session, api_settings, sent)
    for _ in range(3):
        ctx.outbox.add(APPLY_PORTS, {"ports": []}, host_queue("h1"))
        ctx.commit(conflict="")
    sent.clear()
    intent.begin_full(ctx, "h1")
    ctx.outbox.add(RECONCILE_HOST, {"networks": [], "ports": []}, host_queue("h1"))
    ctx.commit(conflict="")
    assert sent[0][1]["full"] is True
    assert (sent[0][1]["base"], sent[0][1]["revision"]) == (3, 4)


def test_nothing_sent_after_a_commit_failure_and_a_broker_failure_does_not_raise(
    session: Session, api_settings: Settings
) -> None:
    def broken(name: str, kwargs: dict[str, Any], queue: str) -> None:
        raise ConnectionError("broker away")

    ctx = Ctx(db=session, outbox=Outbox(broken), settings=api_settings)
    ctx.outbox.add(APPLY_PORTS, {"ports": []}, host_queue("h1"))
    ctx.commit(conflict="")  # committed; the intent is in the database, the nudge lost
    assert intent.status(ctx, "h1")[:2] == (1, 0)
    ctx.outbox.add(APPLY_PORTS, {"ports": []}, host_queue("h1"))
    ctx.outbox.discard()
    ctx.commit(conflict="")
    assert intent.status(ctx, "h1")[:2] == (1, 0)


def test_hosts_lag_when_a_nudge_or_a_report_went_missing(
    session: Session, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"resync_seconds": 5})
    ctx = ctx_for(session, settings, Sent())
    for host in ("h1", "h2", "h3"):
        ctx.outbox.add(APPLY_PORTS, {"ports": []}, host_queue(host))
    ctx.commit(conflict="")
    assert intent.lagging(ctx, ["h1", "h2", "h3"]) == []  # sent just now: not late yet
    intent.record_applied(ctx, host="h2", revision=1)
    long_ago = utcnow() - timedelta(seconds=6)
    session.execute(update(HostIntent).values(changed_at=long_ago, applied_at=long_ago))
    session.commit()
    session.expire_all()
    # h1 and h3 never reported revision 1; h3 is down (not in the list given)
    assert intent.lagging(ctx, ["h1", "h2"]) == ["h1"]
    intent.begin_full(ctx, "h1", resend=True)
    ctx.commit(conflict="")
    session.expire_all()
    assert intent.lagging(ctx, ["h1", "h2"]) == []  # resent just now
    intent.not_resent(ctx, "h1")  # ... or not: the broker refused it
    assert intent.lagging(ctx, ["h1", "h2"]) == ["h1"]
    # the host applied it: in step again
    intent.record_applied(ctx, host="h1", revision=1)
    session.expire_all()
    assert intent.status(ctx, "h1")[:2] == (1, 1)


def test_a_host_ahead_of_the_database_is_made_to_lag(
    session: Session, api_settings: Settings
) -> None:
    ctx = ctx_for(session, api_settings, Sent())
    intent.record_applied(ctx, host="h1", revision=7)
    desired, applied, _ = intent.status(ctx, "h1")
    assert (desired, applied) == (8, 7)


def test_a_report_lost_while_the_host_stays_busy_is_noticed_after_a_few_periods(
    session: Session, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"resync_seconds": 5})
    ctx = ctx_for(session, settings, Sent())
    network = Network(name="n", uuid=str(uuid.uuid4()), definition={}, state="starting")
    session.add(network)
    session.flush()
    waiting = Realisation(network_id=network.id, host="h1", state="pending")
    session.add(waiting)
    for _ in range(2):
        ctx.outbox.add(APPLY_PORTS, {"ports": []}, host_queue("h1"))
        ctx.commit(conflict="")
    intent.record_applied(ctx, host="h1", revision=1)  # busy: behind, but moving
    session.execute(update(HostIntent).values(changed_at=utcnow() - timedelta(seconds=60)))
    for age, late in ((6, []), (16, ["h1"])):
        session.execute(update(Realisation).values(updated_at=utcnow() - timedelta(seconds=age)))
        session.commit()
        assert intent.lagging(ctx, ["h1"]) == late, age
