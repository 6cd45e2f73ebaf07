"""Small request documents that are not definitions."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from app.conf.common import HostName, Label, Strict


class AutostartRequest(Strict):
    model_config = ConfigDict(strict=True)
    enabled: bool


class TokenRequest(Strict):
    model_config = ConfigDict(strict=True)
    role: Literal["reader", "operator", "admin"]
    name: Label = Field(default="", max_length=64)


class MigrateRequest(Strict):
    host: HostName = Field(description="the host the domain moves to")
