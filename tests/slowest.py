"""The slowest tests of a run made of several pytest invocations (scripts/test's parallel and
serial parts): each appends its test durations to a file (a pytest plugin, `-p tests.slowest
--slowest-file F`), and `python -m tests.slowest F...` prints the ten slowest of them all."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

SHOWN = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slowest-file", default=None, help="append each test's duration to this file")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    target = config.getoption("--slowest-file")
    if not target or hasattr(config, "workerinput"):  # an xdist worker: its controller writes them all
        return
    phases: dict[tuple[str, str], float] = {}  # a report may be listed under two outcomes
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                phases[report.nodeid, report.when] = report.duration
    totals: dict[str, float] = {}
    for (nodeid, _when), seconds in phases.items():
        totals[nodeid] = totals.get(nodeid, 0.0) + seconds
    with Path(target).open("a") as out:
        out.writelines(f"{seconds:.2f}\t{nodeid}\n" for nodeid, seconds in totals.items())


def main(files: list[str]) -> None:
    slowest: dict[str, float] = {}
    for name in files:
        path = Path(name)
        if path.is_file():
            for line in path.read_text().splitlines():
                seconds, _, nodeid = line.partition("\t")
                slowest[nodeid] = max(float(seconds), slowest.get(nodeid, 0.0))
    rows = sorted(((seconds, nodeid) for nodeid, seconds in slowest.items()), reverse=True)
    print(f"== the {SHOWN} slowest tests (setup, call and teardown)")
    for seconds, nodeid in rows[:SHOWN]:
        print(f"{seconds:8.2f}s  {nodeid}")


if __name__ == "__main__":
    main(sys.argv[1:])
