"""XML tests reuse the API fixtures (real PostgreSQL, then SQLite) and report the corpus score."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator

import pytest

from tests.api.conftest import api, api_settings, client  # noqa: F401  (fixtures)

CORPUS_TEST = "test_corpus_file_round_trips"
_outcomes: dict[str, list[str]] = defaultdict(list)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator:
    outcome = yield
    report = outcome.get_result()
    if getattr(item, "originalname", None) == CORPUS_TEST and report.when == "call":
        name = item.callspec.params["name"]  # type: ignore[attr-defined]
        _outcomes[name].append("xfailed" if hasattr(report, "wasxfail") else report.outcome)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    passed = [case for case, seen in _outcomes.items() if set(seen) == {"passed"}]
    xfailed = sorted(case for case, seen in _outcomes.items() if "xfailed" in seen)
    terminalreporter.write_sep("-", "libvirt 9.0.0 network corpus (in/ files with an out/ twin)")
    terminalreporter.write_line(
        f"{len(passed)} of {len(_outcomes)} files pass on every database; "
        f"{len(xfailed)} expected failure(s): {', '.join(xfailed) or 'none'}"
    )
