"""What every message shares: JSON in and out, and a clear refusal of a malformed one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class MessageError(ValueError):
    """A message that does not have the shape its task expects (names the task and field)."""


class Message(BaseModel):
    """A message crossing the broker. Unknown fields are ignored, so a newer sender's extra
    field does not break an older reader (hosts and control plane are upgraded together, but
    a queue may still hold messages of the previous version)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """A null where the field has a non-null default means that default (a sender
        that had no value for it, e.g. a row not yet flushed)."""
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        return {
            k: v
            for k, v in data.items()
            if v is not None
            or k not in fields
            or fields[k].is_required()
            or fields[k].get_default(call_default_factory=True) is None
        }

    @classmethod
    def read(cls, data: Self | Mapping[str, Any], what: str | None = None) -> Self:
        """``data`` as this message, or MessageError saying which field is wrong."""
        if isinstance(data, cls):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise MessageError(f"malformed {what or cls.__name__} message: {problems}") from None

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict Celery sends."""
        return self.model_dump(mode="json")
