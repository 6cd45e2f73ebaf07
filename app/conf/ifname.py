"""Interface names as Linux takes them: the one rule for the API and the kernel layer.

The kernel's dev_valid_name() (net/core/dev.c) refuses an empty name, 16 bytes or more
(IFNAMSIZ counts the NUL), "." and "..", and any '/', ':' or isspace() byte, where isspace()
(lib/ctype.c) is tab, LF, VT, FF, CR, space and 0xA0. Beyond it virtnet refuses '%', which
makes the kernel choose a name itself ("br%d" becomes "br0"), and names no host can create:
"all" and "default" (the kernel answers EINVAL: /proc/sys/net/*/conf/ has them) and "lo",
which exists in every network namespace.
"""

from __future__ import annotations

IFNAMSIZ = 16
RESERVED = frozenset({"all", "default", "lo"})
_FORBIDDEN_BYTES = frozenset(b"/:\t\n\v\f\r \xa0")


def ifname_problem(name: str) -> str | None:
    """Why no host can have an interface called ``name``, or None when one can."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return "an interface name must be valid UTF-8"
    if not raw:
        return "an interface name cannot be empty"
    if len(raw) >= IFNAMSIZ:
        return f"an interface name is at most {IFNAMSIZ - 1} bytes; this one is {len(raw)}"
    if name in (".", ".."):
        return f"{name!r} cannot be an interface name"
    if b"\0" in raw or any(b in _FORBIDDEN_BYTES for b in raw):
        return "an interface name cannot contain '/', ':', NUL or whitespace"
    if "%" in name:
        return "an interface name cannot contain '%' (the kernel would pick a name itself)"
    if name in RESERVED:
        return f"{name!r} is reserved: no host can create an interface with that name"
    return None
