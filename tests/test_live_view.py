"""The live view in a real browser: Debian's Chromium driven by Playwright, against run-all on
fake RTSP cameras. Also `live.mp4` read by ffprobe, and the viewer cap."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for

STALL_SECONDS = 2.0


def _config(tmp_path: Path, cams: FakeCameras, nats: NatsServer, port: int, extra: str = "") -> Path:
    config = tmp_path / "camctl.yaml"
    cameras = "".join(f"  cam_{i}: {{url: '{url}', name: 'Camera {i}'}}\n" for i, url in
                      enumerate(cams.urls.values(), start=1))  # fmt: skip
    storage = f"{{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}"
    config.write_text(
        f"cameras:\n{cameras}storage: {storage}\n"
        f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'{extra}}}\n"
        f"ingest: {{stall_seconds: {STALL_SECONDS}}}\n"
    )
    return config


def _online(base: str, count: int) -> bool:
    status, _headers, body = http_get(f"{base}/status")
    cameras = json.loads(body)["cameras"] if status == 200 else []
    return len(cameras) == count and all(c["online"] for c in cameras)


def _viewers(port: int) -> int:
    return int(json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"][0]["viewers"])


def _stream_starts(url: str) -> bool:
    """The first bytes of an endless live.mp4: the init segment's ftyp."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback test URL
            return bool(response.read(8)[4:8] == b"ftyp")
    except OSError:
        return False


def _videos(page: Any) -> dict[str, dict[str, Any]]:
    return dict(
        page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('video[data-camera]')].map(
        v => [v.dataset.camera, {time: v.currentTime, width: v.videoWidth, height: v.videoHeight,
                                 ready: v.readyState}]))""")
    )


def _badge(page: Any, camera: str) -> tuple[str | None, str]:
    badge = page.locator(f'.badge[data-camera="{camera}"]')
    reason = page.locator(f'.tile[data-camera="{camera}"] .reason').text_content() or ""
    return badge.get_attribute("data-online"), reason


def _playing(page: Any, camera: str, width: int, timeout: float) -> None:
    """Its video's currentTime advances, and the picture has the camera's size."""
    wait_for(f"{camera}'s tile", lambda: camera in _videos(page), timeout=timeout)
    start = _videos(page)[camera]["time"]
    wait_for(f"{camera} playing", lambda: (v := _videos(page)[camera])["time"] > start + 0.5 and v["width"] == width,
             timeout=timeout)  # fmt: skip


def test_every_camera_plays_live_in_the_browser_and_a_camera_down_says_why(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=2, size="640x360", fps=15, gop=30, bitrate=400)
    port = free_port()
    config = _config(tmp_path, cams, nats_server, port)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("both cameras online", lambda: _online(base, 2), timeout=30)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(base + "/")
        for camera in ("cam_1", "cam_2"):
            _playing(page, camera, 640, timeout=15)
            assert _badge(page, camera)[0] == "true"
        assert page.locator(".tile .name").all_text_contents() == ["Camera 1", "Camera 2"]
        page.screenshot(path=str(tmp_path / "live.png"))
        page.locator('.tile[data-camera="cam_2"]').click()  # one camera full size, and back
        assert page.locator('.tile[data-camera="cam_1"]').is_hidden()
        assert page.url.endswith("/cam2/"), "one camera has its own address: /<camera>/"
        page.keyboard.press("Escape")
        assert page.locator('.tile[data-camera="cam_1"]').is_visible()

        cams.down("cam2")
        went = time.monotonic()
        wait_for("cam_2 offline on the page", lambda: _badge(page, "cam_2")[0] == "false",
                 timeout=STALL_SECONDS + 1 + 10)  # fmt: skip
        took = time.monotonic() - went
        reason = _badge(page, "cam_2")[1]
        assert reason, "the tile says why"
        assert took <= STALL_SECONDS + 1.0 + 1.0, (
            f"offline shown {took:.1f}s after the camera went (allowing 1 s slack)"
        )
        _playing(page, "cam_1", 640, timeout=5)  # the other camera goes on

        cams.up("cam2")
        wait_for("cam_2 back on the page", lambda: _badge(page, "cam_2")[0] == "true", timeout=30)
        _playing(page, "cam_2", 640, timeout=15)

        # A second viewer who joins now gets a picture at once (from the cached GOP).
        second = browser.new_page(viewport={"width": 1280, "height": 760})
        opened = time.monotonic()
        second.goto(base + "/")
        wait_for("a picture on the second page", lambda: all(
            v["ready"] >= 2 and v["width"] == 640 for v in _videos(second).values()) and len(_videos(second)) == 2,
            timeout=10, interval=0.02)  # fmt: skip
        first_picture = time.monotonic() - opened
        assert first_picture < 1.0 + 1.0, f"first picture after {first_picture:.2f}s (goal 1 s, 1 s slack for CI)"
        second.close()
        page.close()
        assert proc.terminate()[0] == 0, proc.stderr


def test_live_mp4_plays_in_ffprobe_and_the_viewer_cap_answers_503(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="320x240", fps=15, gop=15, bitrate=300)
    port = free_port()
    config = _config(tmp_path, cams, nats_server, port, extra=", max_viewers: 2")
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        url = f"http://127.0.0.1:{port}/cam_1/live.mp4"
        wait_for("live.mp4 answers", lambda: _stream_starts(url), timeout=30)
        ffprobe = shutil.which("ffprobe")
        assert ffprobe, "ffprobe (FFmpeg CLI) is installed by the README's test command"
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-read_intervals", "%+2", "-count_frames", "-show_entries",
             "stream=codec_name,width,height,nb_read_frames", "-of", "json", url],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        stream = json.loads(probe.stdout)["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 240)
        assert int(stream["nb_read_frames"]) >= 15

        wait_for("the probes gone", lambda: _viewers(port) == 0, timeout=10)
        held = [urllib.request.urlopen(url, timeout=5) for _ in range(2)]
        try:
            for response in held:
                assert response.read(8)[4:8] == b"ftyp", "a viewer starts with the init segment"
            try:
                urllib.request.urlopen(url, timeout=5)
                raise AssertionError("a third viewer was let in")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                assert "max_viewers" in json.loads(exc.read())["reason"]
        finally:
            for response in held:
                response.close()
        wait_for("the viewers gone", lambda: _viewers(port) == 0, timeout=10)
        assert _stream_starts(url), "a place is free again"
        assert proc.terminate()[0] == 0, proc.stderr


def test_an_h265_camera_falls_back_to_mjpeg_where_the_browser_cannot_play_it_and_says_so(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="320x240", fps=15, gop=15, bitrate=300, h265=True)
    port = free_port()
    config = _config(tmp_path, cams, nats_server, port)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("the camera online", lambda: _online(base, 1), timeout=30)
        page = browser.new_page()
        page.goto(base + "/")
        tile = page.locator('.tile[data-camera="cam_1"]')
        wait_for("the stream's codec on the tile", lambda: tile.get_attribute("data-codec"), timeout=15)
        codec = tile.get_attribute("data-codec") or ""
        assert codec.startswith("hvc1."), codec
        mime = f'video/mp4; codecs="{codec}"'
        if page.evaluate("mime => MediaSource.isTypeSupported(mime)", mime):
            _playing(page, "cam_1", 320, timeout=15)  # a browser with H.265: the camera's own stream
        else:
            wait_for("the MJPEG picture", lambda: page.evaluate(
                "() => document.querySelector('.tile[data-camera=\"cam_1\"] img.mjpeg').naturalWidth") == 320,
                timeout=15)  # fmt: skip
            assert "H.265" in (tile.locator(".note").text_content() or ""), "the tile says why"
            assert tile.locator("video").is_hidden()
        page.close()
        assert proc.terminate()[0] == 0, proc.stderr


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fragments_read(url: str, seconds: float) -> int:
    """A viewer that keeps up: fragments (moof boxes) read from live.mp4 in `seconds`."""
    count, deadline = 0, time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
        while time.monotonic() < deadline:
            count += response.read1(65536).count(b"moof")
    return count


def test_slow_viewers_are_skipped_then_dropped_and_never_hold_back_the_others(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    """Twenty viewers with a 4 KB receive buffer that never read: the viewer who reads keeps the
    camera's rate, recording goes on, memory stays bounded, and the slow ones are let go."""
    cams = fake_cameras(count=1, size="640x360", fps=30, gop=30, bitrate=4000)
    port = free_port()
    config = _config(tmp_path, cams, nats_server, port, extra=", max_viewers: 30")
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("the camera online", lambda: _online(base, 1), timeout=30)
        worker = json.loads(http_get(f"{base}/status")[2])["cameras"][0]["worker_pid"]
        before = _rss_mb(proc.proc.pid) + _rss_mb(worker)
        slow = []
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /cam_1/live.mp4 HTTP/1.1\r\nHost: camctl\r\n\r\n")
            slow.append(sock)
        try:
            wait_for("20 viewers counted", lambda: _viewers(port) == 20, timeout=10)
            fragments = _fragments_read(f"{base}/cam_1/live.mp4", 10.0)
            assert fragments >= 0.8 * 30 * 10, f"the reading viewer got {fragments} frames in 10 s at 30 fps"
            wait_for("the slow viewers dropped", lambda: _viewers(port) == 0, timeout=90)
            grown = _rss_mb(proc.proc.pid) + _rss_mb(worker) - before
            assert grown < 150, f"front + worker grew {grown:.0f} MB for 20 stalled viewers"
        finally:
            for sock in slow:
                sock.close()
        assert http_get(f"{base}/cam_1/frame.jpg")[0] == 200, "the camera's other routes still answer"
        status = json.loads(http_get(f"{base}/status")[2])["cameras"][0]
        assert status["online"] and status["recording"] == "recording"
        code, took = proc.terminate()
        assert code == 0 and took < 10, proc.stderr
