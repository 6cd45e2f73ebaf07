"""Errors services raise; the API turns each into one problem+json status."""

from __future__ import annotations

from collections.abc import Sequence

from app.conf.network.validate import Problem


class ServiceError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems)


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class PreconditionFailed(ServiceError):
    status = 412
    title = "Precondition failed"


class Invalid(ServiceError):
    status = 422
    title = "Invalid definition"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


def require_revision(what: str, current: int, wanted: int | None) -> None:
    """Refuse a write based on an older read (If-Match), so no one overwrites unseen changes."""
    if wanted is not None and wanted != current:
        raise PreconditionFailed(
            f"{what} is at revision {current}, not {wanted}: someone changed it since you "
            "read it; GET it again and reapply your change"
        )
