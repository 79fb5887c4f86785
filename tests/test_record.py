"""`camctl record` against real fake-cameras: continuity, crash safety, outages, SIGTERM, clips."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from camctl.config import parse_config, stream_view
from camctl.errors import StorageError
from camctl.recording.index import build_index, measure_segment
from camctl.recording.recorder import CameraRecorder, RecordingCamera
from tests.conftest import Result
from tests.harness import FakeCameras
from tests.recording_helpers import (
    Recorder,
    ReferenceClient,
    contiguous_in,
    longest_match,
    segment_files,
    segment_frames,
    slices_of,
    wait_for,
)

FPS = 30
GOP = 15  # half a second


def record_config(tmp_path: Path, url: str, segment_seconds: float = 2, extra: str = "") -> Path:
    path = tmp_path / "camctl.yaml"
    path.write_text(
        f"cameras:\n  cam_1: {url}\nstorage:\n  root: {tmp_path / 'rec'}\n  segment_seconds: {segment_seconds}\n{extra}"
    )
    return path


def journal(root: Path, camera_id: str = "cam_1") -> list[dict[str, object]]:
    path = root / camera_id / "recordings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.serial  # no gap at all, from the first frame: a box busy with other tests delays that first frame
def test_record_is_continuous_across_segment_boundaries_and_stops_on_sigterm(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=FPS, gop=GOP, bitrate=800)
    config = record_config(tmp_path, cams.url("cam1"))
    root = tmp_path / "rec"
    with ReferenceClient(cams.url("cam1")) as reference, Recorder(config, tmp_path / "data") as rec:
        # Four boundaries at 2 s: wait until the fifth segment is being written.
        wait_for("5 segments", lambda: len(segment_files(root, "cam_1")) >= 5, timeout=30)
        status, took = rec.terminate()
    assert status == 0, rec.stderr
    assert took < 5, f"SIGTERM took {took:.1f}s"

    files = segment_files(root, "cam_1")
    entries = [e for e in journal(root) if e["type"] == "segment"]
    assert len(entries) == len(files) >= 5, "every segment, the last one included, was finalised"
    recorded: list[str] = []
    for path, entry in zip(files, entries, strict=True):
        frames = segment_frames(path)
        assert frames[0][1], f"{path.name} does not start with a keyframe"
        assert len(frames) == entry["frames"]
        # The file's own timeline matches the journal: start + duration == end.
        duration = frames[-1][0] + 1 / FPS
        assert abs(float(entry["start"]) + duration - float(entry["end"])) < 0.02  # type: ignore[arg-type]
        recorded += slices_of(frames)
    for prev, nxt in itertools.pairwise(entries):
        assert abs(float(nxt["start"]) - float(prev["end"])) < 0.005, "segments are contiguous in wall-clock time"  # type: ignore[arg-type]
    # The fake camera sends each IDR in two packets with one timestamp (as many cameras do): the
    # ffmpeg CLI reading the camera warns of non-monotonic DTS at every keyframe; reading our files,
    # where the parts are one sample, it must not.
    for path in files:
        read = subprocess.run(["ffmpeg", "-hide_banner", "-v", "warning", "-i", str(path), "-c", "copy", "-f", "null",
                               "-"], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert read.returncode == 0 and "non monotonically increasing dts" not in read.stderr, read.stderr

    # Every frame the camera sent while recording is in exactly one segment, in order: the
    # recording is one contiguous run of what the reference client received (a lost or doubled
    # frame at any boundary breaks the run).
    assert contiguous_in(recorded, reference.slices), (
        f"a frame is missing or doubled: only the first {longest_match(recorded, reference.slices)} of "
        f"{len(recorded)} recorded slices match the camera's stream (segments: {[e['frames'] for e in entries]})"
    )

    listing = camctl("--config", str(config), "recordings", "cam_1", "--json")
    assert listing.returncode == 0, listing.stderr
    cam = json.loads(listing.text)["cameras"][0]
    assert [s["frames"] for s in cam["segments"]] == [e["frames"] for e in entries]
    assert all(s["complete"] for s in cam["segments"]) and cam["gaps"] == []

    # A clip across the second boundary: from 1 s before it to 1 s after, starting at the
    # keyframe at or before --from, so at most one GOP longer than asked.
    boundary = float(entries[1]["end"])  # type: ignore[arg-type]
    out = tmp_path / "clip.mp4"
    clip = camctl(
        "--config", str(config), "clip", "cam_1", "--from", _iso(boundary - 1), "--to", _iso(boundary + 1),
        "-o", str(out), "--json",
    )  # fmt: skip
    assert clip.returncode == 0, clip.stderr
    info = json.loads(clip.text)
    assert 2.0 - 0.05 <= info["duration"] <= 2.0 + GOP / FPS + 0.05
    _start, duration, frames = measure_segment(out, 0)
    assert abs(duration - info["duration"]) < 0.05 and frames == info["frames"]
    clip_slices = slices_of(segment_frames(out))
    assert contiguous_in(clip_slices, recorded), "the clip is the recorded frames, in order"

    nothing = camctl("--config", str(config), "clip", "cam_1", "--from", "2020-01-01T00:00:00Z", "--to",
                     "2020-01-01T00:10:00Z", "-o", str(tmp_path / "none.mp4"))  # fmt: skip
    assert nothing.returncode == 6
    assert "no footage" in nothing.stderr and "Traceback" not in nothing.stderr
    nowhere = camctl("--config", str(config), "clip", "cam_1", "--from", "2020-01-01T00:00:00Z", "--to",
                     "2020-01-01T00:10:00Z", "-o", str(tmp_path / "missing" / "x.mp4"))  # fmt: skip
    assert nowhere.returncode == 5 and "no such folder" in nowhere.stderr, "a storage problem, said first"


def _iso(epoch: float) -> str:
    from camctl.units import iso_time

    return iso_time(epoch)


def test_sigkill_mid_segment_leaves_a_playable_file_missing_at_most_a_second(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=FPS, gop=FPS * 2, bitrate=800)  # GOP 2 s > fragment
    config = record_config(tmp_path, cams.url("cam1"), segment_seconds=60)
    root = tmp_path / "rec"
    with Recorder(config, tmp_path / "data") as rec:
        path = wait_for("the first segment", lambda: (segment_files(root, "cam_1") or [None])[0], timeout=20)
        start, _d, _f = wait_for("its start", lambda: measure_segment(path, 0)[2] and measure_segment(path, 0), 10)
        wait_for("4.5 s of recording", lambda: time.time() - start >= 4.5, timeout=20)
        rec.proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        rec.proc.wait(10)
    start, duration, frames = measure_segment(path, 0)
    lost = (killed_at - start) - duration
    assert lost <= 1.5, f"lost {lost:.2f}s of video"
    assert frames >= (killed_at - start - 1.5) * FPS
    # The torn file decodes up to its last complete fragment.
    frames_read = segment_frames(path)
    assert len(frames_read) == frames and frames_read[0][1]
    listing = json.loads(camctl("--config", str(config), "recordings", "--json").text)
    (seg,) = listing["cameras"][0]["segments"]
    assert seg["complete"] is False and seg["frames"] == frames


def test_outage_is_journalled_as_a_gap_and_recording_resumes(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=FPS, gop=GOP, bitrate=800)
    config = record_config(tmp_path, cams.url("cam1"))
    root = tmp_path / "rec"
    with Recorder(config, tmp_path / "data") as rec:
        wait_for("recording", lambda: segment_files(root, "cam_1"), timeout=20)
        time.sleep(1.0)  # let it record for a while: the outage is mid-segment
        down_at = time.time()
        cams.down("cam1")
        wait_for("the segment closed", lambda: [e for e in journal(root) if e["type"] == "segment"], timeout=10)
        time.sleep(2.0)  # stay down for a while: the recorder retries meanwhile
        cams.up("cam1")
        up_at = time.time()
        wait_for("a gap in the journal", lambda: [e for e in journal(root) if e["type"] == "gap"], timeout=40)
        resumed = wait_for("two segments after the outage", lambda: len(segment_files(root, "cam_1")) >= 3, 30)
        status, _took = rec.terminate()
    assert resumed and status == 0, rec.stderr
    (gap,) = [e for e in journal(root) if e["type"] == "gap"]
    assert down_at - 1.0 <= float(gap["from"]) <= down_at + 0.5  # type: ignore[arg-type]
    assert float(gap["to"]) >= up_at  # type: ignore[arg-type]
    assert gap["reason"] in ("the camera ended the stream", "connection refused") or "no answer" in str(gap["reason"])
    assert "offline" in rec.stderr and "retrying in" in rec.stderr
    index = build_index(root)["cam_1"]
    assert len(index.gaps) == 1
    assert index.segments[-1].start >= float(gap["to"]) - 0.01  # type: ignore[arg-type]

    listing = camctl("--config", str(config), "recordings")
    assert listing.returncode == 0 and "gap: " in listing.text


def test_prune_while_recording_never_touches_the_open_segment(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=FPS, gop=GOP, bitrate=800)
    config = record_config(tmp_path, cams.url("cam1"))
    root = tmp_path / "rec"
    with Recorder(config, tmp_path / "data") as rec:
        wait_for("3 segments", lambda: len(segment_files(root, "cam_1")) >= 3, timeout=30)
        pruned = camctl("--config", str(config), "prune", "--max-age", "1s", "--json")
        assert pruned.returncode == 0, pruned.stderr
        report = json.loads(pruned.text)
        assert report["deleted"], "old segments were deleted"
        left = segment_files(root, "cam_1")
        deleted = {Path(d["path"]) for d in report["deleted"]}
        assert left and not deleted & set(left)
        open_one = left[-1]
        wait_for("the next segment", lambda: segment_files(root, "cam_1")[-1] != open_one, timeout=10)
        status, _took = rec.terminate()
    assert status == 0, rec.stderr
    # The segment that was open during the prune was finished normally, with all its frames.
    entry = next(e for e in journal(root) if e["type"] == "segment" and str(e["file"]).endswith(open_one.name))
    assert len(segment_frames(open_one)) == entry["frames"]


def test_record_applies_retention_inline(tmp_path: Path, camctl_process: Callable[..., Result]) -> None:
    """max_age of 3 s with 2 s segments: after 9 s only the newest few are left, without any timer."""
    config = record_config(
        tmp_path, '"demo:?size=320x240&fps=15&gop=15"', extra="  retention: {max_age: 3s, min_free: null}\n"
    )
    result = camctl_process("--config", str(config), "record", "--duration", "9s", "--json", timeout=40)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.text)["cameras"][0]
    files = segment_files(tmp_path / "rec", "cam_1")
    assert summary["segments"] >= 4 and len(files) <= 3
    assert "retention: deleted" in result.stderr
    # Footage and journals are camctl's user's and group's only, whatever umask it was started with
    # (the camctl_process fixture runs it under the test's, usually 022).
    for path in (tmp_path / "rec").rglob("*"):
        assert path.stat().st_mode & 0o007 == 0, f"{path} is readable by others: {oct(path.stat().st_mode)}"


def test_storage_not_writable_exits_5(
    tmp_path: Path, camctl: Callable[..., Result], camctl_process: Callable[..., Result]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = tmp_path / "camctl.yaml"
    config.write_text(f'cameras:\n  cam_1: "demo:"\nstorage:\n  root: {blocker / "rec"}\n')
    result = camctl_process("--config", str(config), "record", "--duration", "2s")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines()[-1].startswith("camctl: cannot write recordings to")
    clip = camctl("--config", str(config), "clip", "cam_1", "--from", "-1m", "-o", str(blocker / "x.mp4"))
    assert clip.returncode in (5, 6) and "Traceback" not in clip.stderr


def test_h265_camera_records(
    fake_cameras: Callable[..., FakeCameras], camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=FPS, gop=GOP, bitrate=800, h265=True)
    config = record_config(tmp_path, cams.url("cam1"))
    result = camctl_process("--config", str(config), "record", "--duration", "5s", "--json", timeout=40)
    assert result.returncode == 0, result.stderr
    entries = [e for e in journal(tmp_path / "rec") if e["type"] == "segment"]
    assert len(entries) >= 2 and all(e["codec"] == "hevc" for e in entries)
    for path, entry in zip(segment_files(tmp_path / "rec", "cam_1"), entries, strict=True):
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "hevc"
            decoded = sum(1 for _ in container.decode(video=0))
        assert decoded == entry["frames"], f"{path.name}: every recorded frame decodes"


def test_storage_failure_keeps_recording_alive_and_resumes(tmp_path: Path) -> None:
    """The camera's folder turns into a file (as good as a dead disk for the writer): the recorder
    keeps its camera session, reports the error, and writes again once storage is back."""
    config = parse_config('cameras:\n  cam_1: "demo:?size=320x240&fps=15&gop=15"\n')
    camera = stream_view(config.cameras["cam_1"], "main")
    root = tmp_path / "rec"
    failures: list[StorageError] = []
    rec = RecordingCamera(CameraRecorder(camera, root, 2.0, on_storage_error=failures.append, storage_retry=0.5))
    rec.start()
    try:
        wait_for("the first segment", lambda: segment_files(root, "cam_1"), timeout=15)
        cam_dir, parked = root / "cam_1", tmp_path / "parked"
        cam_dir.rename(parked)
        cam_dir.write_text("not a folder")
        wait_for("the storage error", lambda: rec.status.state == "storage error", timeout=10)
        assert failures and rec.status.failure == "storage"
        before = len(segment_files(parked, "cam_1"))
        cam_dir.unlink()
        parked.rename(cam_dir)
        wait_for("recording again", lambda: rec.status.state == "recording" and rec.status.current, timeout=10)
        current = rec.status.current
        wait_for("a new segment", lambda: current is not None and current.exists(), timeout=5)
    finally:
        rec.stop()
        assert rec.join(5)
    assert len(segment_files(root, "cam_1")) > before, "nothing recorded before the failure was lost"
    assert any(g.reason.startswith("storage: cannot write") for g in rec.status.gaps)
    assert rec.status.dropped_frames > 0


def test_prune_plan_tells_hours_that_fit_from_measured_bitrates(
    tmp_path: Path, camctl: Callable[..., Result], camctl_process: Callable[..., Result]
) -> None:
    config = record_config(tmp_path, '"demo:?size=320x240&fps=15&gop=15&bitrate=400k"')
    assert camctl_process("--config", str(config), "record", "--duration", "5s", timeout=40).returncode == 0
    plan = camctl("--config", str(config), "prune", "--plan", "--json")
    assert plan.returncode == 0, plan.stderr
    report = json.loads(plan.text)
    assert 250 <= report["cameras"]["cam_1"]["bitrate_kbps"] <= 550
    assert report["hours_fit"] == round(report["budget_bytes"] / report["bytes_per_hour"], 1)
    tight = camctl("--config", str(config), "prune", "--plan", "--max-bytes", "1MB")
    assert tight.returncode == 0 and "warning:" in tight.stderr and "fewer than the 24 h" in tight.stderr


def test_journal_compaction_drops_deleted_segments_and_old_gaps(tmp_path: Path) -> None:
    from camctl.recording.journal import Gap, Journal, read_journal
    from camctl.recording.segment_writer import SegmentInfo

    root = tmp_path / "rec"
    journal = Journal(root, "cam_1")
    kept, pruned = root / "cam_1/2026-11-24/18/cam_1_20261124T180000Z.mp4", root / "cam_1/2026-11-24/17/x.mp4"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"video")
    for path in (pruned, kept):
        journal.segment(SegmentInfo("cam_1", path, 100.0, 160.0, 1500, 5, "h264"))
    journal.gap(Gap("cam_1", 10.0, 20.0, "old outage"))
    journal.gap(Gap("cam_1", 1000.0, 1010.0, "recent outage"))
    journal.compact(keep_after=500.0)
    segments, gaps = read_journal(root, "cam_1")
    assert list(segments) == ["2026-11-24/18/cam_1_20261124T180000Z.mp4"]
    assert [g.reason for g in gaps] == ["recent outage"]


def test_a_second_recorder_of_the_same_camera_and_root_is_refused_and_a_killed_one_leaves_no_lock(
    camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    camctl = camctl_process  # recorders, each a process with its own lock on the camera's folder
    config = record_config(tmp_path, "'demo:?size=320x240&fps=10&gop=10'")
    root = tmp_path / "rec"
    with Recorder(config, tmp_path / "data") as first:
        wait_for("the first recorder writing", lambda: segment_files(root, "cam_1"), timeout=20)
        second = camctl("record", "cam_1", "--duration", "3", config=config)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"by process {first.proc.pid}" in lines[0], second.stderr
        assert first.proc.poll() is None, "the first one goes on"
        first.kill()  # SIGKILL: the kernel drops its lock
    third = camctl("record", "cam_1", "--duration", "3", config=config)
    assert third.returncode == 0, third.stderr
    files = [e["file"] for e in journal(root) if e["type"] == "segment"]
    assert len(files) == len(set(files)), "no segment journalled twice"


def test_symlinks_inside_the_storage_root_are_never_written_through(
    tmp_path: Path, camctl_process: Callable[..., Result]
) -> None:
    """Before: a journal symlink was appended to its target (as root), and an hour-folder symlink
    wrote segments outside the root, where retention never looked."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "passwd"
    target.write_text("root:x:0:0\n")
    cam_dir = tmp_path / "rec" / "cam_1"
    cam_dir.mkdir(parents=True)
    (cam_dir / "recordings.jsonl").symlink_to(target)
    now = time.time()
    for moment in (now, now + 3600):  # this hour's folder and the next one's
        hour = datetime.fromtimestamp(moment, UTC)
        day_dir = cam_dir / hour.strftime("%Y-%m-%d")
        day_dir.mkdir(exist_ok=True)
        (day_dir / hour.strftime("%H")).symlink_to(outside, target_is_directory=True)
    config = record_config(tmp_path, '"demo:?size=160x120&fps=10&gop=10"', extra="  retention: {min_free: null}\n")
    result = camctl_process("--config", str(config), "record", "--duration", "5s", "--json", timeout=40)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "root:x:0:0\n", "nothing appended through the journal's symlink"
    assert not list(outside.glob("*.mp4")), "no segment written outside the root"
    assert segment_files(tmp_path / "rec", "cam_1") and journal(tmp_path / "rec"), "recorded inside, journalled"
    assert "was a symlink" in result.stderr
