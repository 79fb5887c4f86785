#!/usr/bin/env python3
"""Prune at scale: 24 h of 60 s segments for 4 cameras (5,760 files) pruned to 12 h.

Each tool gets its own identical tree (small files with real names, mtimes at their segment's end):
`camctl prune --max-age 12h` as a process (wall time, peak RSS from wait4), the same pruning as a
library call (no interpreter start-up), and the classic cron line
`find ROOT -name '*.mp4' -mmin +720 -delete` as the peer. Prints JSON with ratios.

    .venv/bin/python scripts/bench_prune.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from camctl.storage.layout import scan_segments, segment_path
from camctl.storage.retention import Limits, prune

CAMERAS = ["cam_1", "cam_2", "cam_3", "cam_4"]


def make_tree(root: Path, now: float, hours: int = 24, size: int = 1024) -> int:
    payload = b"\0" * size
    count = 0
    for cam in CAMERAS:
        for minute in range(hours * 60):
            start = now - (hours * 60 - minute) * 60
            path = segment_path(root, cam, datetime.fromtimestamp(start, UTC))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
            os.utime(path, (start + 60, start + 60))
            count += 1
    return count


def run_measured(argv: list[str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    find = shutil.which("find") or "/usr/bin/find"
    results: dict[str, dict[str, list[float]]] = {
        k: {"t": [], "rss": [], "left": []} for k in ("camctl", "library", "find")
    }
    files = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for tool in results:  # alternate the tools, each on a fresh tree
                root = Path(tmp) / tool
                shutil.rmtree(root, ignore_errors=True)
                now = time.time()
                files = make_tree(root, now)
                config = Path(tmp) / "camctl.yaml"
                config.write_text(f'cameras:\n  cam_1: "demo:"\nstorage:\n  root: {root}\n')
                if tool == "camctl":
                    elapsed, rss = run_measured(
                        [sys.executable, "-m", "camctl", "--config", str(config), "prune", "--max-age", "12h",
                         "--min-free", "0", "--json"]
                    )  # fmt: skip
                elif tool == "library":
                    started = time.perf_counter()
                    prune(root, Limits(max_age=12 * 3600), time.time())
                    elapsed, rss = time.perf_counter() - started, 0.0
                else:
                    elapsed, rss = run_measured([find, str(root), "-name", "*.mp4", "-mmin", "+720", "-delete"])
                results[tool]["t"].append(elapsed)
                results[tool]["rss"].append(rss)
                results[tool]["left"].append(len(scan_segments(root)))
    report: dict[str, Any] = {
        "benchmark": f"prune {files} segment files (4 cameras x 24 h of 60 s) to 12 h, {args.runs} runs each",
        "python": sys.version.split()[0],
    }
    for tool, r in results.items():
        report[tool] = {
            "median_s": round(statistics.median(r["t"]), 3),
            "max_s": round(max(r["t"]), 3),
            "files_left": int(statistics.median(r["left"])),
        }
        if tool != "library":
            report[tool]["peak_rss_mib"] = round(max(r["rss"]), 1)
    report["ratio_median_wall"] = round(report["camctl"]["median_s"] / report["find"]["median_s"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
