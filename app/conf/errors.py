"""Why a document is refused, in the definitions layer's words (the API maps each to HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: ``malformed``: the document cannot be read at all (not XML or JSON, a DOCTYPE, too deep);
#: ``too_large``: it is over the size limit; ``invalid``: it reads, but breaks a rule.
Kind = Literal["malformed", "too_large", "invalid"]


class InvalidDocument(Exception):
    """A request document refused: each of ``errors`` names a field (or XML path and line)."""

    def __init__(self, kind: Kind, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.errors = kind, detail, errors or []


@dataclass(frozen=True)
class Problem:
    """One rule a definition breaks: where (a field path) and why."""

    loc: tuple[str | int, ...]
    msg: str


class Misplaced(ValueError):
    """A model validator's refusal of one field below the model: ``loc`` (relative to the
    model) reaches the error's location, so JSON and XML bodies name that field each in its
    own way (``interfaces.1.mac``, ``/domain/devices/interface[2]/mac/@address``)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def error_location(err: Any) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error's full location and its message without pydantic's prefix."""
    loc = tuple(err.get("loc", ()))
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, Misplaced):
        loc += cause.loc
    return loc, str(err.get("msg", "invalid")).removeprefix("Value error, ")
