"""Notebook tests: a session-wide record of each notebook's wall time, printed at the end of the run.

Timings are reported, never asserted: a shared CI runner can be several times slower than a
quiet laptop, and a timing assert would flake. The course budget (2 minutes per notebook on a
2-core CPU) is checked by reading this table in the CI log.
"""

from __future__ import annotations

import pytest

COURSE_BUDGET_S = 120.0

# notebook path relative to notebooks/ -> (wall seconds, outcome)
TIMINGS: dict[str, tuple[float, str]] = {}


@pytest.fixture(scope="session")
def notebook_timings() -> dict[str, tuple[float, str]]:
    return TIMINGS


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not TIMINGS:
        return
    tr = terminalreporter
    tr.write_sep("-", f"notebook wall times (course notebooks: budget {COURSE_BUDGET_S:.0f} s each on a 2-core CPU)")
    width = max(len(name) for name in TIMINGS)
    for name, (seconds, outcome) in TIMINGS.items():
        over = name.startswith("course/") and seconds > COURSE_BUDGET_S
        tr.write_line(f"{name:<{width}}  {seconds:7.1f} s  {outcome}{'  OVER BUDGET' if over else ''}")
    tr.write_line(f"{'total':<{width}}  {sum(s for s, _ in TIMINGS.values()):7.1f} s")
