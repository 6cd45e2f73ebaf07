"""PostgreSQL LISTEN/NOTIFY for finished operations: a ``?wait`` wakes when its operation ends.

The transaction that ends an operation sends ``NOTIFY virtnet_operations, '<id>'`` (an ORM
hook, so every path that finishes one is covered); PostgreSQL delivers it only if that
transaction commits. Each API process keeps one dedicated connection that LISTENs, in a
thread, and wakes the waiters of that id, which then re-read the row. A notification lost
(the listener reconnecting) only costs the waiter its fallback poll.

A waiter need not read the row before its first notification when the listener was already
listening before the waiter's transaction committed the operation (``since``): every end of
that operation is then heard, before the waiter registered (the listener remembers the ids
it heard lately) or after (it wakes the waiter).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import event, inspect, make_url, text
from sqlalchemy.orm import Session, UOWTransaction

from app.models import Operation

log = logging.getLogger(__name__)

CHANNEL = "virtnet_operations"
#: the listener's ``application_name``, as ``pg_stat_activity`` shows it
APPLICATION = "virtnet-operations-listener"
FINISHED = frozenset({"succeeded", "failed", "refused"})
#: how many of the ids heard last the listener remembers (for waiters registering late)
HEARD = 4096


@event.listens_for(Session, "after_flush")
def _notify_finished(session: Session, _flush: UOWTransaction) -> None:
    ended = [
        obj.id
        for obj in (*session.new, *session.dirty)
        if isinstance(obj, Operation)
        and obj.state in FINISHED
        and (obj in session.new or _state_changed(obj))
    ]
    if not ended:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return
    for op_id in ended:
        conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": op_id})


def _state_changed(op: Operation) -> bool:
    return bool(inspect(op).attrs.state.history.added)


class Listener:
    """One LISTEN connection per process; ``watch(id)`` yields an Event set on its notify."""

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._lock = threading.Lock()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._ready = threading.Event()
        self._tried = threading.Event()  # the first connection attempt is over, either way
        #: since when (time.monotonic()) the current connection has been listening; None
        #: while there is none
        self._since: float | None = None
        self._heard: OrderedDict[str, None] = OrderedDict()
        threading.Thread(target=self._run, name=APPLICATION, daemon=True).start()

    @contextmanager
    def watch(
        self, op_id: str, ready_within: float, *, since: float | None = None
    ) -> Iterator[threading.Event]:
        """An Event set when ``op_id`` is notified. It starts set (read the row now) unless
        the listener has listened without a break since ``since`` (a ``time.monotonic()``
        taken before the operation was committed) and has not heard of it yet."""
        woken = threading.Event()
        # Only a process's first wait waits for the connection; while it is being re-made
        # (the database restarting), waiters just poll.
        if not self._tried.is_set():
            self._ready.wait(ready_within)
        with self._lock:
            self._waiters.setdefault(op_id, []).append(woken)
            covered = since is not None and self._since is not None and self._since <= since
            if not covered or op_id in self._heard:
                woken.set()
        try:
            # registered before the caller reads the row: a finish after that read wakes us
            yield woken
        finally:
            with self._lock:
                left = [e for e in self._waiters.get(op_id, []) if e is not woken]
                if left:
                    self._waiters[op_id] = left
                else:
                    self._waiters.pop(op_id, None)

    def _run(self) -> None:
        quiet = False
        while True:
            try:
                self._listen()
            except Exception as exc:  # reconnect; waiters poll meanwhile
                loud = self._ready.is_set() or not quiet  # once per outage
                log.log(logging.WARNING if loud else logging.DEBUG, "operations listener: %s", exc)
                quiet = True
            with self._lock:
                self._since = None  # from now on a notification may be missed
            self._tried.set()
            self._ready.clear()
            self._wake_all()  # what was notified while down may have been missed
            threading.Event().wait(1.0)

    def _listen(self) -> None:
        with psycopg.connect(
            self._dsn, autocommit=True, application_name=APPLICATION, connect_timeout=5
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            with self._lock:
                self._since = time.monotonic()
            self._ready.set()
            self._tried.set()
            self._wake_all()  # what ended while it was (re)connecting was not heard
            for note in conn.notifies():
                with self._lock:
                    self._heard[note.payload] = None
                    if len(self._heard) > HEARD:
                        self._heard.popitem(last=False)
                    for woken in self._waiters.get(note.payload, []):
                        woken.set()

    def _wake_all(self) -> None:
        with self._lock:
            for waiting in self._waiters.values():
                for woken in waiting:
                    woken.set()


_listeners: dict[tuple[int, str], Listener] = {}
_guard = threading.Lock()


def listener(url: str) -> Listener | None:
    """This process's listener for ``url`` (started on first use); None off PostgreSQL."""
    if not url.startswith("postgresql"):
        return None
    key = (os.getpid(), url)  # a forked API worker starts its own
    with _guard:
        if key not in _listeners:
            _listeners[key] = Listener(url)
        return _listeners[key]
