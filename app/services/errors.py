"""Errors services raise, one class per kind of refusal; the API maps each kind to HTTP."""

from __future__ import annotations

from collections.abc import Sequence

from app.conf.errors import Problem


class ServiceError(Exception):
    """A request the service refuses; ``problems`` name the fields at fault, if any."""

    def __init__(self, detail: str, *, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems)


class NotFound(ServiceError):
    """The object named does not exist."""


class Conflict(ServiceError):
    """The request clashes with the current state (a name or device taken, a wrong state)."""


class PreconditionFailed(ServiceError):
    """The caller's revision (If-Match) is not the current one."""


class Invalid(ServiceError):
    """The definition breaks a rule (``problems`` say which)."""


class Forbidden(ServiceError):
    """The caller's role does not allow this."""


class Unauthorized(ServiceError):
    """No valid credentials."""


def require_revision(what: str, current: int, wanted: int | None) -> None:
    """Refuse a write based on an older read (If-Match), so no one overwrites unseen changes."""
    if wanted is not None and wanted != current:
        raise PreconditionFailed(
            f"{what} is at revision {current}, not {wanted}: someone changed it since you "
            "read it; GET it again and reapply your change"
        )
