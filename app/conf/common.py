"""Field types shared by every resource: names, interface names, MAC addresses."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.conf.ifname import ifname_problem
from app.conf.jsondoc import check_depth

#: the largest id or count a query may name: SQL INTEGER, the ids' column type
DB_INT_MAX = 2**31 - 1

NAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,63}")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
#: a character XML 1.0 cannot carry (nor PostgreSQL text, for NUL)
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
NOT_XML_MESSAGE = "contains characters XML cannot carry (control characters, surrogates)"
CONTROL = re.compile("[\x00-\x1f\x7f]")


def not_xml(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where a document (as ``model_dump(mode="json")`` gives it) has a string, key or value,
    that XML cannot carry: it could be neither stored nor shown as libvirt XML."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from not_xml(key, loc)
            yield from not_xml(item, (*loc, key))
    elif isinstance(value, list):
        for j, item in enumerate(value):
            yield from not_xml(item, (*loc, j))
    elif isinstance(value, str) and NOT_XML.search(value):
        yield loc


def _one_line(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("must be one line of text, with no control characters")
    return value


#: a free-text label (a token's name): one line, no control characters
Label = Annotated[str, AfterValidator(_one_line)]


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
    problem = ifname_problem(value)
    if problem:
        raise ValueError(problem)
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
#: a free-form JSON object (``metadata``), nested at most jsondoc.MAX_DEPTH deep
JsonObject = Annotated[dict[str, Any], AfterValidator(check_depth)]


def random_mac(prefix: str = "52:54:00") -> str:
    return prefix + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def compact(value: Any) -> Any:
    """A JSON document without nulls and empty lists: what a user wrote, not every default."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value
