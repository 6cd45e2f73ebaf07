"""The parts of configuration the command line needs before it loads anything heavy."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting has a value the service cannot run with; the message names it."""


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
