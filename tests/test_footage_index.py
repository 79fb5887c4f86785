"""The in-memory footage index: current from the journal's tail, without rescanning the disk."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from camctl.recording.footage import SNAPSHOT_NAME, FootageIndex, spans_of
from camctl.recording.journal import Gap, Journal, journal_path
from camctl.recording.segment_writer import SegmentInfo
from camctl.storage.layout import segment_path

T0 = 1_800_000_000.0


def segment(root: Path, start: float, seconds: float = 10.0, journal: bool = True) -> Path:
    """A segment file (its content is never read when journalled) and its journal line."""
    path = segment_path(root, "cam_1", datetime.fromtimestamp(start, UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 100)
    if journal:
        Journal(root, "cam_1").segment(SegmentInfo("cam_1", path, start, start + seconds, 250, 100, "h264"))
    return path


def test_segments_that_close_later_are_listed_from_the_journal_and_pruned_ones_drop_off(tmp_path: Path) -> None:
    first = segment(tmp_path, T0)
    segment(tmp_path, T0 + 10)
    index = FootageIndex(tmp_path, "cam_1")
    assert [(s.start, s.end) for s in spans_of(index.window().segments)] == [(T0, T0 + 20)]
    segment(tmp_path, T0 + 20)
    Journal(tmp_path, "cam_1").gap(Gap("cam_1", T0 + 30, T0 + 40, "camera offline: connection refused"))
    segment(tmp_path, T0 + 40)
    now = index.window()
    assert [(s.start, s.end) for s in spans_of(now.segments)] == [(T0, T0 + 30), (T0 + 40, T0 + 50)]
    assert [g.reason for g in now.gaps] == ["camera offline: connection refused"]
    first.unlink()  # retention
    assert index.window().segments[0].start == T0 + 10
    window = index.window(T0 + 25, T0 + 45)
    assert [s.start for s in window.segments] == [T0 + 20, T0 + 40], "what overlaps the window"


def test_a_compacted_journal_is_read_again_and_a_file_being_written_waits_for_its_line(tmp_path: Path) -> None:
    segment(tmp_path, T0)
    writing = segment(tmp_path, T0 + 10, journal=False)  # just written: the recorder still has it open
    index = FootageIndex(tmp_path, "cam_1")
    assert len(index.window().segments) == 1, "not listed as a broken file while it is being written"
    Journal(tmp_path, "cam_1").segment(SegmentInfo("cam_1", writing, T0 + 10, T0 + 20, 250, 100, "h264"))
    assert [s.journalled for s in index.window().segments] == [True, True]
    Journal(tmp_path, "cam_1").compact(keep_after=T0)  # a new file, shorter than what was read
    segment(tmp_path, T0 + 20)
    assert [s.start for s in index.window().segments] == [T0, T0 + 10, T0 + 20]


def test_after_a_restart_the_index_resumes_from_what_it_kept_and_reads_only_new_lines(tmp_path: Path) -> None:
    for n in range(200):
        segment(tmp_path, T0 + 10 * n)
    Journal(tmp_path, "cam_1").gap(Gap("cam_1", T0 + 2000, T0 + 2010, "camera offline: connection refused"))
    first = FootageIndex(tmp_path, "cam_1")
    assert len(first.window().segments) == 200
    kept = tmp_path / "cam_1" / SNAPSHOT_NAME
    assert kept.is_file(), "what was read is kept beside the footage"
    journal = journal_path(tmp_path, "cam_1")
    read = journal.stat().st_size
    for n in range(201, 204):  # written after the index was kept (after the gap)
        segment(tmp_path, T0 + 10 * n)
    crashed = segment(tmp_path, T0 + 2040, journal=False)  # left by a crash, in the newest hour
    left = time.time() - 60  # a minute ago: no longer being written
    os.utime(crashed, (left, left))
    # What was read before is blanked in place (same file, same length): a restart that read the
    # whole journal again would no longer know those 200 segments from their lines.
    with journal.open("r+b") as f:
        f.write(b" " * (read - 1) + b"\n")
    restarted = FootageIndex(tmp_path, "cam_1").window()
    assert len(restarted.segments) == 200 + 3 + 1
    assert all(s.journalled for s in restarted.segments if s.path != crashed)
    assert [g.reason for g in restarted.gaps if g.reason.startswith("camera")] == ["camera offline: connection refused"]
    assert any(s.path == crashed and not s.journalled for s in restarted.segments), "found in the newest folder"
    # A journal replaced (compacted) since: its offsets mean nothing, so everything is read again.
    journal.unlink()
    for n in (202, 203):
        segment(tmp_path, T0 + 10 * n)
    again = FootageIndex(tmp_path, "cam_1").window()
    assert [s.start for s in again.segments if s.journalled] == [T0 + 2020, T0 + 2030]
