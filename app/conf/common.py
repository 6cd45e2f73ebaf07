"""Field types shared by every resource: names, interface names, MAC addresses."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,63}")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


class Strict(BaseModel):
    """Base for request documents: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters of A-Z a-z 0-9 _ . + - and not start with '-' or '.'"
        )
    return value


def _ifname(value: str) -> str:
    if not value or len(value.encode()) > 15:
        raise ValueError("an interface name is 1 to 15 bytes long")
    if value in {".", ".."} or any(c == "/" or c == ":" or c.isspace() for c in value):
        raise ValueError("an interface name cannot contain '/', ':' or whitespace, nor be '.'")
    return value


def _mac(value: str) -> str:
    if not MAC_RE.fullmatch(value):
        raise ValueError("must be a MAC address like 52:54:00:12:34:56")
    value = value.lower()
    if int(value[:2], 16) & 1:
        raise ValueError("must be a unicast MAC address (first octet even), not multicast")
    if value == "00:00:00:00:00:00":
        raise ValueError("must not be the all-zero MAC address")
    return value


def _host_name(value: str) -> str:
    if not HOST_NAME_RE.fullmatch(value):
        raise ValueError("must be 1-63 characters of letters, digits, '.', '_' or '-'")
    return value


Name = Annotated[str, AfterValidator(_name)]
IfName = Annotated[str, AfterValidator(_ifname)]
MacAddress = Annotated[str, AfterValidator(_mac)]
HostName = Annotated[str, AfterValidator(_host_name)]
Kbytes = Annotated[int, Field(ge=0, le=2**32 - 1)]


def random_mac(prefix: str = "52:54:00") -> str:
    return prefix + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def compact(value: Any) -> Any:
    """A JSON document without nulls and empty lists: what a user wrote, not every default."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value
