"""`camctl probe` against real RTSP cameras (gst-rtsp-server) and the built-in demo cameras."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.harness import FakeCameras, free_port

PASSWORD = "Sup3r-secret"


def write_config(tmp_path: Path, cameras: str, name: str = "camctl.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"defaults: {{timeout: 5s}}\ncameras:\n{cameras}")
    return path


def assert_no_password(result: Result) -> None:
    assert PASSWORD not in result.text and PASSWORD not in result.stderr


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung camera."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_probe_measures_1080p30_cameras_one_with_password(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(
        count=2, size="1920x1080", fps=30, bitrate=2048, gop=30, auth=f"admin:{PASSWORD}", auth_only=["cam2"]
    )
    config = write_config(
        tmp_path,
        (
            f"  cam_1: {cams.url('cam1')}\n"
            f"  cam_2: {{url: '{cams.url('cam2')}', username: admin, password: '{PASSWORD}'}}\n"
        ),
    )
    result = camctl("probe", "--json", config=config)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["camera_id"] for r in rows] == ["cam_1", "cam_2"]
    for row in rows:
        assert row["online"] is True and row["error"] is None
        assert (row["codec"], row["width"], row["height"]) == ("h264", 1920, 1080)
        assert row["fps"] == pytest.approx(30, rel=0.1)
        assert row["bitrate_kbps"] == pytest.approx(2048, rel=0.25)
        assert row["gop"] == 30
        assert row["transport"] == "tcp"
        assert 0 < row["first_frame_ms"] < 5000
    assert rows[1]["url"] == f"rtsp://admin:***@127.0.0.1:{cams.port}/cam2"
    assert_no_password(result)


def test_probe_wrong_password_exits_4_without_printing_it(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, auth="admin:right-one")
    config = write_config(tmp_path, f"  cam_1: {{url: '{cams.url()}', username: admin, password: '{PASSWORD}'}}\n")
    for args in (("probe",), ("probe", "--json"), ("--debug", "probe")):
        result = camctl(*args, config=config)
        assert result.returncode == 4, result.stderr
        assert "authentication refused" in result.text + result.stderr
        assert_no_password(result)
    row = json.loads(camctl("probe", "--json", config=config).stdout)[0]
    assert (row["online"], row["error_kind"]) == (False, "auth")


def test_probe_unreachable_and_hung_cameras_exit_3_within_timeout(
    camctl: Callable[..., Result], tmp_path: Path, silent_port: int
) -> None:
    closed_port = free_port()  # reserved for this worker: nothing else starts listening there
    config = write_config(
        tmp_path, (f"  refused: rtsp://127.0.0.1:{closed_port}/stream\n  hung: rtsp://127.0.0.1:{silent_port}/stream\n")
    )
    started = time.monotonic()
    result = camctl("probe", "--json", "--timeout", "2", config=config)
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    rows = {r["camera_id"]: r for r in json.loads(result.stdout)}
    assert rows["refused"]["error_kind"] == "unreachable" and "refused" in rows["refused"]["error"]
    assert rows["hung"]["error_kind"] == "timeout"
    assert elapsed < 2 + 4  # the timeout plus slack for a busy box, both cameras probed at once


def test_probe_camera_taken_down_is_reported(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=2)
    config = write_config(tmp_path, f"  cam_1: {cams.url('cam1')}\n  cam_2: {cams.url('cam2')}\n")
    cams.down("cam2")
    result = camctl("probe", "--json", config=config)
    assert result.returncode == 3
    rows = json.loads(result.stdout)
    assert rows[0]["online"] is True
    assert rows[1]["online"] is False and "404" in rows[1]["error"]
    cams.up("cam2")
    assert camctl("probe", "cam_2", config=config).returncode == 0


def test_probe_h265_camera(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, h265=True, size="640x360")
    config = write_config(tmp_path, f"  cam_1: {cams.url()}\n")
    result = camctl("probe", "--json", config=config)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)[0]
    assert (row["codec"], row["width"], row["height"]) == ("hevc", 640, 360)


def test_probe_demo_cameras_without_config(camctl: Callable[..., Result]) -> None:
    result = camctl("probe", "--json", "--seconds", "1")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    # every stream of each camera: the demo's have a main and a sub, as real cameras
    assert [r["camera_id"] for r in rows] == [f"cam_{i}{s}" for i in range(1, 5) for s in ("", "/sub")]
    assert all(r["online"] and (r["width"], r["height"]) == (1280, 720) for r in rows[::2])
    assert all(r["online"] and (r["width"], r["height"]) == (640, 360) for r in rows[1::2])
    assert all(r["fps"] == pytest.approx(15, rel=0.1) for r in rows)


def test_probe_table_for_people(camctl: Callable[..., Result]) -> None:
    result = camctl("probe", "cam_1", "--seconds", "0.5")
    assert result.returncode == 0
    assert "cam_1" in result.text and "online" in result.text and "1280x720" in result.text


@pytest.mark.parametrize(("transport", "worked"), [("udp", "udp"), ("auto", "tcp")])
def test_probe_over_udp_and_auto_transport_names_the_transport_that_worked(
    fake_cameras: Callable[..., FakeCameras], camctl: Callable[..., Result], tmp_path: Path, transport: str, worked: str
) -> None:
    cams = fake_cameras(count=1)
    config = write_config(tmp_path, f"  cam_1: {{url: '{cams.url()}', transport: {transport}}}\n")
    result = camctl("probe", "--json", "--seconds", "1", config=config)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)[0]
    assert (row["online"], row["transport"], row["width"]) == (True, worked, 640)
