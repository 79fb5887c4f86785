"""A disk that fills: retention keeps room ahead of the recorder, a write cut by ENOSPC never leaves
a file that does not play, and a run that lost footage says so (exit 5)."""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable
from pathlib import Path

import av

from camctl.recording.index import build_index
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras
from tests.recording_helpers import segment_files, wait_for

SEGMENT = 4


def config(tmp_path: Path, cams: FakeCameras, root: Path, retention: str = "{min_free: null}") -> Path:
    path = tmp_path / "camctl.yaml"
    lines = [f"  cam_{i}: '{cams.url(f'cam{i}')}'" for i in (1, 2)]
    path.write_text("cameras:\n" + "\n".join(lines) + f"\nstorage: {{root: '{root}', segment_seconds: {SEGMENT}, "
                    f"retention: {retention}}}\ningest: {{stall_seconds: 3}}\n")  # fmt: skip
    return path


def plays(path: Path) -> int:
    """Frames decoded from the whole file; raises on any damage (a torn fragment, a bad NAL size)."""
    frames = 0
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        for _frame in container.decode(video=0):
            frames += 1
    return frames


def fill(folder: Path, leave: int = 0) -> Path:
    """Takes the filesystem's free space (all but `leave` bytes), as another program would."""
    filler = folder / "someone-elses-file"
    with filler.open("wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    if leave:
        with filler.open("r+b") as f:
            f.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_a_small_disk_filled_by_our_own_footage_loses_nothing(
    fake_cameras: Callable[..., FakeCameras],
    camctl_process: Callable[..., Result],
    small_filesystem: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    root = small_filesystem(16) / "rec"
    cams = fake_cameras(count=2, size="640x360", fps=15, gop=15, bitrate=2048)
    began = time.time()
    result = camctl_process("record", "--duration", "45", "--json", config=config(tmp_path, cams, root), timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.text)
    assert all(c["storage_lost_seconds"] == 0 for c in summary["cameras"]), summary
    for cam, index in build_index(root).items():
        assert index.segments[0].start > began + 10, f"{cam}: the oldest footage made room"
        assert not [g for g in index.gaps if g.start > began + 5], f"{cam}: footage lost: {index.gaps}"
        for seg in index.segments:
            assert plays(seg.path) == seg.frames
    assert "retention: deleted" in result.stderr


def test_a_disk_filled_by_someone_else_leaves_only_playable_files_and_exit_5(
    fake_cameras: Callable[..., FakeCameras], small_filesystem: Callable[[int], Path], tmp_path: Path
) -> None:
    disk = small_filesystem(24)
    root = disk / "rec"
    cams = fake_cameras(count=2, size="640x360", fps=15, gop=15, bitrate=2048)
    with CamctlProcess(config(tmp_path, cams, root), tmp_path / "d", "record", "--json") as rec:
        wait_for("two segments per camera", lambda: all(
            len(segment_files(root, f"cam_{i}")) >= 3 for i in (1, 2)), timeout=30)  # fmt: skip
        filled = time.time()
        filler = fill(disk)  # the disk is full now: the next fragment written fails
        wait_for("the recorder hitting the full disk", lambda: "storage" in rec.stderr, timeout=20)
        wait_for("recording again after forced retention", lambda: any(
            p.stat().st_mtime > time.time() - 1 and p.stat().st_ctime > filled + 2
            for i in (1, 2) for p in segment_files(root, f"cam_{i}")), timeout=20)  # fmt: skip
        filler.unlink()
        time.sleep(SEGMENT)  # a segment's worth of recording after the trouble (nothing to await)
        code, _took = rec.terminate()
    assert code == 5, rec.stderr
    summary = json.loads(rec.stdout)
    losses = {}
    for cam, index in build_index(root).items():
        for seg in index.segments:
            assert plays(seg.path) > 0, f"{seg.path.name} does not play"
        # A camera whose write failed lost footage, journalled with its reason; the other may have
        # gone on in the room forced retention made.
        losses[cam] = sum(g.end - g.start for g in index.gaps if g.reason.startswith("storage"))
        assert losses[cam] <= 2 * SEGMENT, f"{cam}: lost {losses[cam]:.1f}s to the full disk"
        reported = next(c for c in summary["cameras"] if c["camera_id"] == cam)["storage_lost_seconds"]
        assert abs(reported - losses[cam]) < 1.0, (reported, losses[cam])
    assert any(losses.values()), "the full disk cost footage, and the journal says so"


def test_a_min_free_larger_than_the_filesystem_is_a_warning_not_churn(
    fake_cameras: Callable[..., FakeCameras],
    camctl: Callable[..., Result],
    camctl_process: Callable[..., Result],
    small_filesystem: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    root = small_filesystem(64) / "rec"
    cams = fake_cameras(count=2, size="320x240", fps=15, gop=15, bitrate=300)
    cfg = config(tmp_path, cams, root, retention="{}")  # the default min_free: 5 GB
    check = camctl("config", "check", config=cfg)
    assert check.returncode == 0 and "min_free (5.0 GB) cannot be met" in check.stderr, check.stderr
    result = camctl_process("record", "--duration", "14", config=cfg)
    assert result.returncode == 0, result.stderr
    assert "min_free (5.0 GB) cannot be met" in result.stderr
    assert "retention: deleted" not in result.stderr
    assert all(len(segment_files(root, f"cam_{i}")) >= 3 for i in (1, 2)), "every segment kept"
