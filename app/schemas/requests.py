"""Small request documents that are not definitions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.schemas.common import Strict


class AutostartRequest(Strict):
    enabled: bool


class TokenRequest(Strict):
    role: Literal["reader", "operator", "admin"]
    name: str = Field(default="", max_length=64)
