"""Motion detection: nothing for a still picture with sensor noise, an event within a second of a
real camera's picture starting to move, an end once it stops; unit and end to end (run-all, a
real nats-server, `camctl motion` as users run it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from camctl.analysis.motion import MotionDetector, Sensitivity
from camctl.analysis.publisher import marker_path
from camctl.analysis.ring import RING_DIR
from camctl.bus.subjects import FRAME_SUBJECT
from camctl.recording.motion_log import append_motion, read_motion
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import Event, EventTap, http_get, write_ingest_config
from tests.recording_helpers import wait_for

RNG = np.random.default_rng(7)
STILL_FRAMES = 45  # 3 s of the still camera's pictures written to the ring while the watcher reads it


def noisy(height: int = 360, width: int = 640) -> np.ndarray:
    """A still grey scene as a sensor sees it: +-3 grey levels of noise on every pixel."""
    return (128 + RNG.integers(-3, 4, (height, width))).astype(np.uint8)


def with_box(picture: np.ndarray, x: int) -> np.ndarray:
    moved = picture.copy()
    moved[140:220, x : x + 120] = 235
    return moved


def test_a_mask_hides_motion_under_it_and_only_there() -> None:
    """The box moves across rows 140-220 of 360: a mask over that band silences it, a mask over the
    top rows (a camera's clock overlay) does not."""
    band = ((0.0, 0.35), (1.0, 0.35), (1.0, 0.65), (0.0, 0.65))
    clock = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.08), (0.0, 0.08))
    for mask, moves in (((band,), False), ((clock,), True), ((), True)):
        detector = MotionDetector("cam_1", Sensitivity(hold=1.0, mask=mask))
        for n in range(10):
            assert detector.push(noisy(), n * 0.2, n) is None
        events = [detector.push(with_box(noisy(), 40 + 20 * n), 2 + n * 0.2, 10 + n) for n in range(10)]
        clock_ticks = noisy()
        clock_ticks[0:20, :] = 255  # the overlay changing under the clock mask
        events.append(detector.push(clock_ticks, 4.0, 20))
        started = [e for e in events if e is not None and e.state == "start"]
        assert bool(started) == moves, f"mask {mask}: {started}"


def test_a_still_noisy_picture_is_no_motion_and_a_moving_box_starts_then_ends_it() -> None:
    detector = MotionDetector("cam_1", Sensitivity(hold=1.0))
    t = 1000.0
    for n in range(50):  # 10 s of a still scene at 5 fps
        assert detector.push(noisy(), t + n * 0.2, n) is None, f"noise read as motion at picture {n}"
    events = []
    for n in range(50, 60):  # a box moving right
        event = detector.push(with_box(noisy(), 40 + 20 * (n - 50)), t + n * 0.2, n)
        events += [event] if event else []
    assert [e.state for e in events] == ["start"]
    start = events[0]
    assert start.frame_number == 51, "two moving pictures in a row start it"
    assert 0.02 < start.score < 0.1 and len(start.boxes) >= 1
    _x, y, w, h = start.boxes[0]
    assert 0.3 < y + h / 2 < 0.6 and w < 0.6, start.boxes  # around the box's rows, not the whole picture
    ended = [detector.push(noisy(), t + n * 0.2, n) for n in range(60, 70)]
    end = [e for e in ended if e]
    assert len(end) == 1 and end[0].state == "end" and end[0].end == t + 59 * 0.2
    assert end[0].to_json()["start"] == round(start.start, 6)


@pytest.mark.serial
def test_camctl_motion_publishes_within_a_second_of_a_camera_moving_and_nothing_while_it_is_still(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15, scene=True)
    port = free_port()
    extra = (f"node: test-{uuid.uuid4().hex[:8]}\nstorage: {{root: '{tmp_path / 'rec'}'}}\n"
             "defaults: {motion: {hold: 1s}}\n")  # fmt: skip
    config = write_ingest_config(tmp_path / "camctl.yaml", {"cam_1": cams.url("cam1")}, nats_server.url, port, extra)
    log = tmp_path / "motion.log"
    with (
        CamctlProcess(config, tmp_path / "d", "run-all") as runall,
        EventTap(nats_server.url, ["seguranca.camera.motion"]) as tap,
        EventTap(nats_server.url, [FRAME_SUBJECT]) as frames,
        log.open("w") as err_file,
    ):
        wait_for("cam_1 online", lambda: online(port), timeout=30)
        _s, first, _r = frames.wait("a frame event of cam_1", lambda e: e[1]["camera_id"] == "cam_1", timeout=10)
        assert first.get("ring"), f"no shared-memory ring on this box: the watcher's reading cannot be seen: {first}"
        marker = marker_path(RING_DIR / first["ring"])  # its readers touch it; the ring is written while they do
        started = time.time()
        argv = [sys.executable, "-m", "camctl", "--config", str(config), "motion", "--json", "--fps", "10"]
        watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err_file, text=True)
        try:
            # Attached before silence means anything: its threads run, it got cam_1's frame events
            # (subscribed) and marks the ring as read, and pictures are written to the ring for it.
            wait_for("the watcher started", lambda: "watching 1 camera(s)" in log.read_text(), timeout=20)
            wait_for("the watcher marking cam_1's ring as read", lambda: marker.stat().st_mtime > started - 1, 20)

            def ring_written(e: Event) -> bool:
                return e[1]["camera_id"] == "cam_1" and e[1].get("ring_write") is not None

            frames.wait("a picture written to the ring for the watcher", ring_written, timeout=10)
            for _ in range(STILL_FRAMES):  # still and noisy: pictures read, and nothing to say
                frames.wait("a still picture written to the ring", ring_written, timeout=5)
            assert watcher.poll() is None and "no frames" not in log.read_text(), log.read_text()
            assert tap.events.empty(), f"motion in a still picture: {tap.events.get_nowait()}"
            moved_at = time.time()
            cams.move("cam1")
            _subject, event, received = tap.events.get(timeout=5)
            assert event["camera_id"] == "cam_1" and event["state"] == "start" and event["boxes"], event
            assert received - moved_at < 1.0, f"the event came {received - moved_at:.2f}s after the camera moved"
            cams.still("cam1")
            _subject, end, _received = tap.events.get(timeout=5)
            assert end["state"] == "end" and end["start"] == event["start"] and end["end"] >= end["start"]
            # noted beside the footage: the recordings API (and so the timeline) shows where it moved
            listing = json.loads(http_get(f"http://127.0.0.1:{port}/api/recordings/cam_1")[2])
            assert len(listing["motion"]) == 1 and listing["motion"][0]["score"] == end["score"], listing["motion"]
        finally:
            watcher.terminate()
            out, _ = watcher.communicate(timeout=15)
        assert watcher.returncode == 0, log.read_text()
        printed = [json.loads(line) for line in out.splitlines()]
        assert [p["state"] for p in printed] == ["start", "end"], printed
        assert runall.terminate()[0] == 0


def online(port: int) -> bool:
    code, _headers, body = http_get(f"http://127.0.0.1:{port}/status")
    return code == 200 and all(c["online"] for c in json.loads(body)["cameras"])


def test_the_motion_log_beside_the_footage_lists_overlaps_skips_torn_lines_and_keeps_to_its_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not append_motion(tmp_path, "cam_9", 1.0, 2.0, 0.1, None), "not recorded here: nothing written"
    (tmp_path / "cam_1").mkdir()
    for n in range(5):
        assert append_motion(tmp_path, "cam_1", 100.0 * n, 100.0 * n + 10, 0.01 * n, None)
    with (tmp_path / "cam_1" / "motion.jsonl").open("a") as f:
        f.write('{"start": 600, "en')  # a line torn by a crash
    assert [m["start"] for m in read_motion(tmp_path, "cam_1", 105.0, 300.0)] == [100.0, 200.0, 300.0]
    monkeypatch.setattr("camctl.recording.motion_log.COMPACT_BYTES", 10)
    append_motion(tmp_path, "cam_1", 1000.0, 1010.0, 0.5, keep=750.0)  # grown past its size: older dropped
    assert [m["start"] for m in read_motion(tmp_path, "cam_1", 0.0, 2000.0)] == [300.0, 400.0, 1000.0]


def test_camctl_motion_without_nats_is_one_line_and_exit_3(
    camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: 'demo:'\nnats: {{url: 'nats://127.0.0.1:{port}'}}\n")
    # a process: were the bus there, it would watch until a signal
    result = camctl_process("--config", str(config), "motion", timeout=30)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"camctl: NATS at nats://127.0.0.1:{port}: connection refused (is nats-server running?)"
    ]
