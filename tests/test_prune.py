"""Retention on real files: by age, by total size, by free space (injected probe), idempotent."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from camctl.storage.layout import parse_segment_name, scan_segments, segment_path
from camctl.storage.retention import Limits, prune
from tests.conftest import Result

NOW = datetime(2026, 11, 24, 18, 0, 0, tzinfo=UTC)


def make_segments(root: Path, cameras: list[str], hours: int, size: int = 1000) -> None:
    """One 60 s segment per camera per minute, ending at NOW."""
    for cam in cameras:
        for minute in range(hours * 60):
            path = segment_path(root, cam, NOW - timedelta(minutes=hours * 60 - minute))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * size)


def test_segment_path_layout_and_parsing(tmp_path: Path) -> None:
    path = segment_path(tmp_path, "cam_1", datetime(2026, 11, 24, 18, 0, 0, tzinfo=UTC))
    assert path == tmp_path / "cam_1/2026-11-24/18/cam_1_20261124T180000Z.mp4"
    assert parse_segment_name(path.name) == ("cam_1", NOW.timestamp())
    assert parse_segment_name("notes.txt") is None
    assert parse_segment_name("cam_1_20261399T180000Z.mp4") is None


def test_prune_by_age_keeps_newest_and_other_files(tmp_path: Path) -> None:
    make_segments(tmp_path, ["cam_1", "cam_2"], hours=3)
    (tmp_path / "cam_1" / "README.txt").write_text("not a segment")
    plan = prune(tmp_path, Limits(max_age=3600), NOW.timestamp())
    assert {plan.reasons[s.path] for s in plan.delete} == {"max_age"}
    left = scan_segments(tmp_path)
    assert len(left) == 2 * 60  # the last hour of each camera
    assert min(s.start for s in left) >= NOW.timestamp() - 3600 - 60
    assert (tmp_path / "cam_1" / "README.txt").exists()
    assert not (tmp_path / "cam_1" / "2026-11-24" / "15").exists()  # emptied hour folders go
    again = prune(tmp_path, Limits(max_age=3600), NOW.timestamp())
    assert again.delete == []  # idempotent


def test_prune_by_bytes_and_by_free_space(tmp_path: Path) -> None:
    make_segments(tmp_path, ["cam_1", "cam_2"], hours=1, size=1000)
    plan = prune(tmp_path, Limits(max_bytes=50_000), NOW.timestamp())
    assert sum(s.size for s in scan_segments(tmp_path)) <= 50_000
    assert {plan.reasons[s.path] for s in plan.delete} == {"max_bytes"}
    plan = prune(tmp_path, Limits(min_free=10_000), NOW.timestamp(), free_probe=lambda _: 4_000)
    assert plan.freed_bytes == 6_000 and {plan.reasons[s.path] for s in plan.delete} == {"min_free"}


def test_prune_never_deletes_the_newest_segment_of_a_camera(tmp_path: Path) -> None:
    make_segments(tmp_path, ["cam_1"], hours=1)
    prune(tmp_path, Limits(max_bytes=0, max_age=0), NOW.timestamp())
    left = scan_segments(tmp_path)
    assert len(left) == 1 and left[0].start == (NOW - timedelta(minutes=1)).timestamp()


def test_prune_cli_dry_run_json_and_bad_override(camctl: Callable[..., Result], tmp_path: Path) -> None:
    root = tmp_path / "rec"
    recent = datetime.now(UTC).replace(microsecond=0)
    for cam in ("cam_1", "cam_2"):
        for age_h in (30, 20, 2, 0):
            start = recent - timedelta(hours=age_h)
            path = segment_path(root, cam, start)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 100)
            os.utime(path, (start.timestamp() + 60, start.timestamp() + 60))  # a 60 s segment
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras: {{cam_1: 'demo:', cam_2: 'demo:'}}\nstorage: {{root: {root}}}\n")
    dry = camctl("prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and len(report["deleted"]) == 2  # the 30 h old ones (max_age 24h)
    assert len(scan_segments(root)) == 8
    real = camctl("prune", "--max-age", "12h")
    assert real.returncode == 0 and "deleted 4 segment(s)" in real.text
    assert len(scan_segments(root)) == 4
    bad = camctl("prune", "--max-age", "soon")
    assert bad.returncode == 2 and "bad duration 'soon'" in bad.stderr
