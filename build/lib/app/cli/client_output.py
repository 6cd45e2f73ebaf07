"""What the client verbs print: virsh-style tables and fields, JSON, errors, progress."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TextIO

from app.cli.client_api import ClientError

SPINNER = "|/-\\"
EMPTY = "-"


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def cell(value: Any) -> str:
    """A table cell: booleans as yes/no, nothing as '-'."""
    if isinstance(value, bool):
        return yes_no(value)
    return EMPTY if value is None or value == "" else str(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table as virsh prints one: a leading space, a header, a rule, left-aligned columns."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return " " + "   ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    print(line(headers))
    print("-" * (sum(widths) + 3 * (len(widths) - 1) + 2))
    for row in cells:
        print(line(row))


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """``Name:   value`` lines as virsh's net-info prints them."""
    width = max(len(label) for label, _ in fields) + 2
    for label, value in fields:
        print(f"{label + ':':<{width}}{cell(value)}")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def emit(as_json: bool, result: Any, human: Callable[[], None] | str) -> None:
    """The API's JSON for scripts, or ``human`` (a line, or a function printing) for people.

    An empty answer (a 204) prints nothing as JSON.
    """
    if as_json:
        if result is not None:
            print_json(result)
    elif callable(human):
        human()
    else:
        print(human)


def report(error: ClientError, stream: TextIO | None = None) -> int:
    """Print ``error: ...``, its per-field lines and a hint on stderr; returns the exit code."""
    stream = stream or sys.stderr
    print(f"error: {error.message}", file=stream)
    for detail in error.details:
        print(f"  {detail}", file=stream)
    if error.hint:
        print(f"hint: {error.hint}", file=stream)
    return error.exit_code


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Progress:
    """A spinner and the seconds elapsed on stderr while a verb waits, when stderr is a TTY."""

    def __init__(self, label: str, *, stream: TextIO | None = None, every: float = 0.1) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _draw(self) -> None:
        started = time.monotonic()
        tick = 0
        while not self._stop.wait(self.every):  # a quick answer never shows a spinner
            elapsed = time.monotonic() - started
            spin = SPINNER[tick % len(SPINNER)]
            self.stream.write(f"\r{spin} {self.label} ({elapsed:.1f} s)\033[K")
            self.stream.flush()
            tick += 1
