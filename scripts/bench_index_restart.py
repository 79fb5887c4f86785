#!/usr/bin/env python3
"""The first footage listing after a restart: one camera's index with N segments (60k: about
three weeks of 30 s segments), read whole (no kept index: the journal and every folder) against
resumed from the index kept beside the footage (then only new journal lines and the newest hour
folders), beside a plain walk of the folders (what a listing without any index costs). Prints JSON.

    .venv/bin/python scripts/bench_index_restart.py --segments 60000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from camctl.recording.footage import SNAPSHOT_NAME, FootageIndex
from camctl.recording.journal import Journal
from camctl.recording.segment_writer import SegmentInfo
from camctl.storage.layout import segment_path

T0 = 1_700_000_000.0


def build(root: Path, count: int, seconds: float) -> None:
    journal = Journal(root, "cam_1")
    for n in range(count):
        start = T0 + n * seconds
        path = segment_path(root, "cam_1", datetime.fromtimestamp(start, UTC))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 64)
        journal.segment(SegmentInfo("cam_1", path, start, start + seconds, int(seconds * 30), 64, "h264"))


def first_listing_ms(root: Path, start: float | None = None, end: float | None = None) -> tuple[float, int]:
    """A fresh index (a restarted camctl) answering its first listing of [start, end]."""
    began = time.perf_counter()
    segments = len(FootageIndex(root, "cam_1").window(start, end).segments)
    return (time.perf_counter() - began) * 1000, segments


def walk_ms(root: Path) -> float:
    began = time.perf_counter()
    sum(len(files) for _dir, _subdirs, files in os.walk(root / "cam_1"))
    return (time.perf_counter() - began) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="segment length")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="camctl-bench-index-"))
    try:
        build(root, args.segments, args.seconds)
        kept = root / "cam_1" / SNAPSHOT_NAME
        end = T0 + args.segments * args.seconds
        day = (end - 86400, end)  # what /api/recordings and the timeline ask for first: the last 24 h
        whole, resumed, resumed_all, walked = [], [], [], []
        for _ in range(args.runs):
            kept.unlink(missing_ok=True)
            ms, count = first_listing_ms(root, *day)  # reads it all, then keeps it
            whole.append(ms)
            ms, resumed_count = first_listing_ms(root, *day)  # a restart: from what was kept
            resumed.append(ms)
            resumed_all.append(first_listing_ms(root)[0])  # every segment at once (made records)
            walked.append(walk_ms(root))
            assert count == resumed_count == min(args.segments, int(86400 / args.seconds))
        result = {
            "segments": args.segments,
            "listed_24h": count,
            "whole_ms": round(min(whole), 1),
            "resumed_ms": round(min(resumed), 1),
            "resumed_all_segments_ms": round(min(resumed_all), 1),
            "folder_walk_ms": round(min(walked), 1),
            "speedup": round(min(whole) / min(resumed), 1),
            "kept_index_bytes": kept.stat().st_size,
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
