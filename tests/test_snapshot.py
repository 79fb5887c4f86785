"""`camctl snapshot` (cold path) against real RTSP cameras and the demo cameras."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from camctl.media.jpeg import jpeg_settings
from tests.conftest import Result
from tests.harness import FakeCameras
from tests.test_probe import PASSWORD, assert_no_password, write_config


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    with av.open(io.BytesIO(data), format="image2pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_snapshot_to_stdout_is_a_1080p_jpeg(
    fake_cameras: Callable[..., FakeCameras], camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    """A process: the bytes on its real stdout (a pipe) are the JPEG and nothing else."""
    cams = fake_cameras(count=1, size="1920x1080", fps=30, bitrate=2048, gop=30)
    config = write_config(tmp_path, f"  cam_1: {cams.url()}\n")
    result = camctl_process("snapshot", "cam_1", config=config)
    assert result.returncode == 0, result.stderr
    assert jpeg_size(result.stdout) == (1920, 1080)
    assert result.stdout.endswith(b"\xff\xd9"), "the JPEG's end marker is the last byte on stdout"


def test_snapshot_to_file_scaled_and_quality(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, auth=f"admin:{PASSWORD}")
    config = write_config(tmp_path, f"  cam_1: {{url: '{cams.url()}', username: admin, password: '{PASSWORD}'}}\n")
    small, best = tmp_path / "small.jpg", tmp_path / "best.jpg"
    result = camctl("snapshot", "cam1", "-o", str(small), "--width", "320", "--quality", "20", config=config)
    assert result.returncode == 0, result.stderr
    assert jpeg_size(small.read_bytes()) == (320, 180)
    assert "320x180" in result.stderr
    assert camctl("snapshot", "cam_1", "-o", str(best), "--quality", "100", config=config).returncode == 0
    assert jpeg_size(best.read_bytes()) == (640, 360)
    assert best.stat().st_size > small.stat().st_size
    assert_no_password(result)


def test_snapshot_while_another_client_watches_the_camera(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, fps=10, gop=30)  # a keyframe every 3 s
    config = write_config(tmp_path, f"  cam_1: {cams.url()}\n")
    with av.open(cams.url(), options={"rtsp_transport": "tcp"}, timeout=10):
        started = time.monotonic()
        result = camctl("snapshot", "cam_1", "--timeout", "8", config=config)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert jpeg_size(result.stdout) == (640, 360)
    assert elapsed < 3.0 + 2.0  # at most one keyframe interval plus start-up and connection


def test_snapshot_wrong_password_unknown_camera_and_down_camera(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=2, auth="admin:right-one", auth_only=["cam1"])
    config = write_config(
        tmp_path,
        (
            f"  cam_1: {{url: '{cams.url('cam1')}', username: admin, password: '{PASSWORD}'}}\n"
            f"  cam_2: {cams.url('cam2')}\n"
        ),
    )
    wrong = camctl("snapshot", "cam_1", "-o", str(tmp_path / "x.jpg"), config=config)
    assert wrong.returncode == 4
    assert wrong.stderr.strip() == (
        f"camctl: cam_1: authentication refused (rtsp://admin:***@127.0.0.1:{cams.port}/cam1)"
    )
    assert_no_password(wrong)
    assert not (tmp_path / "x.jpg").exists()
    unknown = camctl("snapshot", "cam_9", config=config)
    assert unknown.returncode == 2 and "unknown camera 'cam_9'" in unknown.stderr
    cams.down("cam2")
    down = camctl("snapshot", "cam_2", "--timeout", "3", config=config)
    assert down.returncode == 3 and "cam_2:" in down.stderr and "Traceback" not in down.stderr


def test_snapshot_refuses_to_write_jpeg_to_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "camctl", "snapshot", "cam_1"],
            stdout=follower,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            timeout=60,
            check=False,
            env={**os.environ, "CAMCTL_DATA_DIR": str(tmp_path)},
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert b"redirect it (camctl snapshot cam_1 > cam_1.jpg) or use -o FILE" in proc.stderr


@pytest.mark.parametrize("camera", ["cam_1", "cam4"])
def test_snapshot_of_demo_camera(camctl: Callable[..., Result], camera: str) -> None:
    result = camctl("snapshot", camera)
    assert result.returncode == 0, result.stderr
    assert jpeg_size(result.stdout) == (1280, 720)


def test_warm_path_default_quality_matches_the_encoder_default() -> None:
    from camctl.commands import snapshot
    from camctl.media import jpeg

    assert snapshot.DEFAULT_QUALITY == jpeg.DEFAULT_QUALITY


@pytest.mark.parametrize("quality", [float("inf"), float("nan"), 1e9, 2.5, "abc", True, 0, 101, [85]])
def test_jpeg_settings_refuse_what_is_not_a_whole_quality_1_to_100(quality: object) -> None:
    with pytest.raises(ValueError, match="quality"):
        jpeg_settings(quality, None)


def test_jpeg_settings_take_numbers_and_numeric_text_and_default_the_quality() -> None:
    assert jpeg_settings(None, None) == (85, None)
    assert jpeg_settings("70", "640") == (70, 640)
    assert jpeg_settings(70.0, 320) == (70, 320)
    with pytest.raises(ValueError, match="width 16-8192"):
        jpeg_settings(70, 8193)
