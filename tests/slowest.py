"""The slowest tests of a run made of several pytest invocations (scripts/test's parallel and
serial parts): each appends its test durations to a file (a pytest plugin, `-p tests.slowest
--slowest-file F`), and `python -m tests.slowest F...` prints the ten slowest of them all and
each part's time (`--save tests/durations.tsv` keeps every test's duration for the next run).

With `--longest-first tests/durations.tsv` the plugin runs the tests that took longest last time
first: four workers then end together instead of one finishing a minute-long test alone."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest

SHOWN = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slowest-file", default=None, help="append each test's duration to this file")
    parser.addoption("--longest-first", default=None, help="run the tests this durations file lists as longest first")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = config.getoption("--longest-first")
    if not known:
        return
    seconds = _durations([Path(known)])
    # Stable: tests the file does not know keep their order, after the known ones.
    items.sort(key=lambda item: -seconds.get(item.nodeid, 0.0))


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


def _durations(paths: list[Path]) -> dict[str, float]:
    found: dict[str, float] = {}
    for path in paths:
        if path.is_file():
            for line in path.read_text().splitlines():
                seconds, _, nodeid = line.partition("\t")
                with contextlib.suppress(ValueError):
                    found[nodeid] = max(float(seconds), found.get(nodeid, 0.0))
    return found


def main(files: list[str]) -> None:
    save = None
    if files[:1] == ["--save"]:
        save, files = Path(files[1]), files[2:]
    slowest = _durations([Path(name) for name in files])
    rows = sorted(((seconds, nodeid) for nodeid, seconds in slowest.items()), reverse=True)
    if save is not None:
        save.write_text("".join(f"{seconds:.2f}\t{nodeid}\n" for seconds, nodeid in rows))
    print(f"== the {SHOWN} slowest tests (setup, call and teardown)")
    for seconds, nodeid in rows[:SHOWN]:
        print(f"{seconds:8.2f}s  {nodeid}")


if __name__ == "__main__":
    main(sys.argv[1:])
