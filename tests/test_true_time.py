"""Recorded time is real time: a third-party server with an untidy clock (VLC looping a file), and a
camera that freezes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av

from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, VlcCamera
from tests.recording_helpers import segment_files, wait_for


def journal(root: Path) -> list[dict[str, object]]:
    path = root / "cam_1" / "recordings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def presentation_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.time_base]


def named_time(path: Path) -> float:
    stamp = path.stem.rsplit("_", 1)[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def test_a_vlc_camera_recorded_for_a_minute_gives_a_minute_at_its_frame_rate(
    vlc_camera: VlcCamera, camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    """VLC rewinds its clock by ~1 s and bursts ~20 frames at each loop of its file (every ~19 s);
    before the fix 60 s recorded became 116 s of segments named up to a minute in the future."""
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: {{url: '{vlc_camera.url}', transport: auto}}\n"
                      f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 10}}\n")  # fmt: skip
    began = time.time()
    result = camctl_process("record", "cam_1", "--duration", "60", "--json", config=config, timeout=120)
    ended = time.time()
    assert result.returncode == 0, result.stderr
    segments = [e for e in journal(tmp_path / "rec") if e["type"] == "segment"]
    starts = [float(e["start"]) for e in segments]  # type: ignore[arg-type]
    ends = [float(e["end"]) for e in segments]  # type: ignore[arg-type]
    span = ends[-1] - starts[0]
    assert 58 <= span <= 62, f"60 s recorded as {span:.1f}s of segments"
    assert began - 1 <= starts[0] and ends[-1] <= ended + 1, "on the wall clock"
    for prev_end, start in zip(ends, starts[1:], strict=False):
        assert abs(start - prev_end) < 0.001, "contiguous: a segment ends where the next one starts"
    total = 0
    for path, entry in zip(segment_files(tmp_path / "rec", "cam_1"), segments, strict=True):
        assert named_time(path) <= float(entry["start"]), f"{path.name} named after its first frame"  # type: ignore[arg-type]
        shown = sorted(presentation_times(path))
        total += len(shown)
        duration = float(entry["end"]) - float(entry["start"])  # type: ignore[arg-type]
        if duration > 9:  # a whole segment (a short one may hold a burst not yet absorbed)
            fps = len(shown) / duration
            assert 24 <= fps <= 28, f"{path.name}: {fps:.1f} fps (VLC sends about 26 a second)"
        spacing = [b - a for a, b in itertools.pairwise(shown)]
        # VLC sends the seam of its loop twice over: a frame or two there may sit a few ms apart,
        # never at the same instant (the segment cut by the stop may hold a single frame)
        assert min(spacing, default=1.0) > 0.0005, f"{path.name}: two frames shown {min(spacing) * 1000:.2f} ms apart"
        squeezed = sum(1 for gap in spacing if gap < 0.02)  # VLC's loop seam: a few frames
        assert squeezed <= 6, f"{path.name}: {squeezed} frames shown less than half an interval apart"
    assert 24 <= total / span <= 28, f"{total / span:.1f} fps overall"


def test_a_frozen_camera_gap_starts_when_it_stopped_sending(
    fake_cameras: Callable[..., FakeCameras], tmp_path: Path
) -> None:
    cams = fake_cameras(size="320x240", fps=15, gop=15, bitrate=300)
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: '{cams.url()}'\nstorage: {{root: '{root}', segment_seconds: 4}}\n"
                      "ingest: {stall_seconds: 2}\n")  # fmt: skip
    assert cams.proc is not None
    with CamctlProcess(config, tmp_path / "d", "record") as rec:
        wait_for("recording", lambda: segment_files(root, "cam_1"), timeout=15)
        time.sleep(2)  # some footage before the freeze (nothing to await: time must pass)
        frozen = time.time()
        os.kill(cams.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(6)  # the freeze itself is the thing under test
        finally:
            os.kill(cams.proc.pid, signal.SIGCONT)
        thawed = time.time()
        wait_for("footage after the freeze", lambda: any(
            float(e["start"]) > thawed for e in journal(root) if e["type"] == "segment")  # type: ignore[arg-type]
            or len(segment_files(root, "cam_1")) >= 3, timeout=30)  # fmt: skip
        assert rec.terminate()[0] == 0, rec.stderr
    gaps = [e for e in journal(root) if e["type"] == "gap" and float(e["to"]) > frozen]  # type: ignore[arg-type]
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert frozen - 0.5 <= float(gap["from"]) <= frozen + 2 + 0.5, "the gap starts when the camera stopped"  # type: ignore[arg-type]
    assert float(gap["to"]) >= thawed - 0.5, "and lasts the whole freeze"  # type: ignore[arg-type]
    segments = [e for e in journal(root) if e["type"] == "segment"]
    inside = [e for e in segments if float(e["start"]) < thawed - 0.5 and float(e["end"]) > frozen + 0.5]  # type: ignore[arg-type]
    assert not inside, f"no footage placed inside the freeze: {inside}"


def test_probe_reports_a_25_fps_x264_camera_as_25_not_the_50_its_timing_ticks_at(
    vlc_camera: VlcCamera, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    """Before: FFmpeg's tick rate ("tbr", 50 for 25 fps H.264) was shown as the camera's claim."""
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: {{url: '{vlc_camera.url}', transport: auto}}\n")
    result = camctl("--config", str(config), "probe", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.text)[0]
    assert 23 <= probe["fps"] <= 29, probe
    assert probe["claimed_fps"] is None or abs(probe["claimed_fps"] - 25) < 1, probe
    table = camctl("--config", str(config), "probe", timeout=60)
    assert "claims 50" not in table.text


def test_a_server_that_refuses_rtsp_over_tcp_says_which_transport_to_set(
    vlc_camera: VlcCamera, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    """VLC's RTSP server answers 461 to TCP; before, the error said only "protocol not supported"."""
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: '{vlc_camera.url}'\n")  # transport: tcp, the default
    result = camctl("--config", str(config), "probe", "--json", timeout=60)
    assert result.returncode == 3
    assert "refuses RTSP over TCP (461): set transport: auto or udp" in json.loads(result.text)[0]["error"]
    # With `transport: auto`, probe says which one worked, the value to set
    config.write_text(f"cameras:\n  cam_1: {{url: '{vlc_camera.url}', transport: auto}}\n")
    result = camctl("--config", str(config), "probe", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    probed = json.loads(result.text)[0]
    assert probed["online"] and probed["transport"] == "udp", probed
