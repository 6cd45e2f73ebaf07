"""What every service call needs: a session, an outbox for worker tasks, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import utcnow
from app.services.outbox import Outbox


@dataclass
class Ctx:
    db: Session
    outbox: Outbox
    settings: Settings

    @property
    def down_after(self) -> timedelta:
        s = self.settings
        return timedelta(seconds=s.heartbeat_seconds * s.missed_heartbeats)

    def commit(self, *, conflict: str) -> None:
        """Commit, turn a lost race on a unique column into a 409, then send queued tasks."""
        from app.services.errors import Conflict

        try:
            self.db.commit()
        except IntegrityError:
            self.db.rollback()
            raise Conflict(conflict) from None
        self.outbox.flush()

    def host_is_up(self, last_seen: datetime) -> bool:
        return utcnow() - last_seen < self.down_after
