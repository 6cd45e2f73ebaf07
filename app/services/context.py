"""What every service call needs: a session, an outbox for worker tasks, the settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import utcnow
from app.services import intent
from app.services.outbox import Outbox


@dataclass
class Ctx:
    db: Session
    outbox: Outbox
    settings: Settings
    #: when the context was made (``time.monotonic()``): before anything it commits
    started: float = field(default_factory=time.monotonic)

    @property
    def down_after(self) -> timedelta:
        s = self.settings
        return timedelta(seconds=s.heartbeat_seconds * s.missed_heartbeats)

    def commit(self, *, conflict: str) -> None:
        """Commit, then send queued tasks. A lost race on a unique column propagates, so the
        caller can run the transaction again (app.services.retry); ``conflict`` says what
        clashed if it never stops losing.

        Every host sent something gets its desired revision bumped in this transaction, so
        what it decided reaches the host even if the message after the commit is lost."""
        try:
            intent.stamp(self.db, self.outbox)
            self.db.commit()
        except IntegrityError as exc:
            self.db.rollback()
            self.outbox.discard()
            exc.add_note(conflict)
            raise
        except BaseException:
            self.outbox.discard()
            raise
        self.outbox.flush()

    def host_is_up(self, last_seen: datetime) -> bool:
        return utcnow() - last_seen < self.down_after
