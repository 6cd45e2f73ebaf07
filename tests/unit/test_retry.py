"""app.services.retry on real databases: which errors are races, what a clash names, and that
a call is run again only while it has not committed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Network
from app.services import retry
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests import services


@pytest.fixture(params=["postgresql", "sqlite"])
def ctx(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Ctx]:
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    services.empty_tables(url)
    settings = Settings(database_url=url, broker_url=redis_url)
    with get_sessionmaker(url)() as session:
        yield Ctx(session, Outbox(None), settings)


def network(name: str, bridge: str) -> Network:
    return Network(name=name, uuid=f"uuid-{name}", bridge=bridge, definition={"name": name})


def clash(ctx: Ctx) -> IntegrityError:
    ctx.db.add(network("a", "virbr0"))
    ctx.db.commit()
    ctx.db.add(network("b", "virbr0"))
    with pytest.raises(IntegrityError) as caught:
        ctx.db.flush()
    ctx.db.rollback()
    return caught.value


def test_a_unique_violation_is_a_race_that_names_its_column(ctx: Ctx) -> None:
    exc = clash(ctx)
    assert retry.is_race(exc) and not retry.is_outage(exc)
    found = retry.duplicate(exc)
    assert found is not None and found.table == "networks" and found.columns == ("bridge",)
    if ctx.db.get_bind().dialect.name == "postgresql":
        assert found.values == ("virbr0",)


def test_a_refused_connection_is_an_outage() -> None:
    port = services.free_port()
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    with pytest.raises(OperationalError) as caught, engine.connect():
        pass
    assert retry.is_outage(caught.value) and not retry.is_race(caught.value)


def test_run_repeats_a_lost_race_but_never_a_committed_call(ctx: Ctx) -> None:
    calls: list[int] = []

    def loses_once(c: Ctx) -> str:
        calls.append(1)
        c.db.add(network(f"n{len(calls)}", "virbr0" if len(calls) == 1 else "virbr1"))
        c.db.commit()
        return "done"

    ctx.db.add(network("first", "virbr0"))
    ctx.db.commit()
    assert retry.run(ctx, loses_once) == "done" and len(calls) == 2

    def commits_then_clashes(c: Ctx) -> None:
        calls.append(1)
        c.db.add(network("late", "virbr9"))
        c.db.commit()
        c.db.add(network("late2", "virbr9"))
        c.db.flush()

    calls.clear()
    with pytest.raises(IntegrityError):
        retry.run(ctx, commits_then_clashes)
    assert len(calls) == 1
    ctx.db.rollback()
    names = set(ctx.db.scalars(text("SELECT name FROM networks")))
    assert names == {"first", "n2", "late"}
