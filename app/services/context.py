"""What every service call needs: a session, an outbox for worker tasks, the settings."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def down_after(self) -> timedelta:
        s = self.settings
        return timedelta(seconds=s.heartbeat_seconds * s.missed_heartbeats)

    def commit(self, *, conflict: str) -> None:
        """Commit, turn a lost race on a unique column into a 409, then send queued tasks.

        Every host sent something gets its desired revision bumped in this transaction, so
        what it decided reaches the host even if the message after the commit is lost."""
        from app.services.errors import Conflict

        try:
            intent.stamp(self.db, self.outbox)
            self.db.commit()
        except IntegrityError:
            self.db.rollback()
            self.outbox.discard()
            raise Conflict(conflict) from None
        except BaseException:
            self.outbox.discard()
            raise
        self.outbox.flush()

    def host_is_up(self, last_seen: datetime) -> bool:
        return utcnow() - last_seen < self.down_after
