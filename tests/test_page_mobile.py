"""The live page as phones meet it, in real Chromium: an iPhone (ManagedMediaSource, no
MediaSource), a browser that plays only HLS, one that plays neither (JPEGs, one request at a time),
touch (a tap opens a camera, a finger's drag on the timeline moves the moment), and only what is
seen streams (tiles scrolled away and a hidden page stop; the server's viewer count shows it).
HLS itself (`live.m3u8`) is read by ffprobe, a player users meet."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import Ingest, http_get, write_ingest_config
from tests.recording_helpers import wait_for
from tests.test_streams import SUB_SIZE, camera_status, stream_state, two_stream_config

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
# As an iPhone: no MediaSource, a ManagedMediaSource (Chromium's MediaSource under that name).
AS_IPHONE = "window.ManagedMediaSource = window.MediaSource; delete window.MediaSource;"
NO_MSE = "delete window.MediaSource; delete window.ManagedMediaSource;"
NO_HLS = """const canPlay = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return /mpegurl/i.test(type) ? "" : canPlay.call(this, type); };"""


def _tile(page: Any, camera: str, what: str) -> Any:
    """A property of the camera's tile (JavaScript on `tile` and `video`), None before it exists."""
    return page.evaluate(
        """([camera, what]) => { const tile = document.querySelector(`.tile[data-camera="${camera}"]`);
           if (!tile) return null; const video = tile.querySelector('video'); return eval(what); }""",
        [camera, what],
    )


def _plays(page: Any, camera: str, width: int, timeout: float) -> None:
    """The tile's video has the stream's width and its time advances."""
    wait_for(f"{camera} at width {width}", lambda: _tile(page, camera, "video.videoWidth") == width, timeout)
    start = _tile(page, camera, "video.currentTime")
    wait_for(f"{camera} playing", lambda: _tile(page, camera, "video.currentTime") > start + 0.5, timeout)


def test_an_iphone_plays_through_managed_media_source_and_a_tap_opens_the_camera_a_drag_moves_the_moment(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15, gop=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    storage = f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port, storage)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("both streams online", lambda: camera_status(port).get("online"), 30)
        context = browser.new_context(**PHONE)
        context.add_init_script(AS_IPHONE)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        _plays(page, "cam_1", 320, 20)
        assert _tile(page, "cam_1", "tile.dataset.playback") == "mms"
        assert _tile(page, "cam_1", "tile.querySelector('.way').textContent") == "MMS", "the tile says how it plays"
        assert _tile(page, "cam_1", "video.disableRemotePlayback") is True, "Safari plays a managed source only so"
        assert _tile(page, "cam_1", "video.playsInline") is True

        page.locator('.tile[data-camera="cam_1"]').tap()
        wait_for("the camera opened", lambda: page.evaluate("document.body.classList.contains('solo')"), 5)
        _plays(page, "cam_1", 640, 20)  # its main stream, through the managed source too
        assert page.evaluate("location.pathname") == "/cam1/"  # its slug

        # footage from 20 s back: a finger dragged right over a minute-wide timeline moves the moment back
        listing = f"http://127.0.0.1:{port}/api/recordings/cam_1?start=-2m"
        wait_for("30 s recorded", lambda: _recorded_seconds(listing) >= 30, 60)
        page.locator('.tile[data-camera="cam_1"] button[data-zoom="1m"]').tap()
        track = page.locator('.tile[data-camera="cam_1"] .track')
        wait_for("the minute shown", lambda: _shown_seconds(track) == 60, 10)
        box = track.bounding_box()
        assert box is not None and box["height"] >= 30, f"a track a thumb can hold: {box}"
        before = time.time()
        _touch_drag(page, box["x"] + box["width"] * 0.3, box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
        asked = before - 0.3 * 60  # 30 % of a minute back from live
        video = 'video[data-camera="cam_1"]'
        wait_for("footage playing", lambda: page.get_attribute(video, "data-time"), 20)
        shown = _epoch(page.get_attribute(video, "data-time") or "")
        assert asked - 4 <= shown <= asked + 4, f"dragged to about {asked:.1f}, playing {shown:.1f}"
        assert _tile(page, "cam_1", "tile.classList.contains('playback')")
        context.close()
        assert proc.terminate()[0] == 0, proc.stderr


def test_hls_plays_where_there_is_no_media_source_and_ffprobe_reads_live_m3u8(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15, gop=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port)
    base = f"http://127.0.0.1:{port}"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("both streams online", lambda: camera_status(port).get("online"), 30)
        code, headers, body = http_get(f"{base}/cam_1/live.m3u8", timeout=20)
        playlist = body.decode()
        assert code == 200 and headers["Content-Type"].startswith("application/vnd.apple.mpegurl"), (code, playlist)
        assert '#EXT-X-MAP:URI="hls/sub/init-' in playlist and "#EXTINF:" in playlist, playlist
        assert stream_state(port, "sub", "viewers") == 1, "HLS players count as a viewer of the stream"
        for stream, size in (("sub", (320, 180)), ("main", (640, 360))):
            frames = _ffprobe_frames(f"{base}/cam_1/live.m3u8?stream={stream}")
            assert frames["size"] == size and frames["frames"] >= 20, (stream, frames)
        assert http_get(f"{base}/cam_1/live.m3u8?stream=nope")[0] == 404

        context = browser.new_context(viewport={"width": 1280, "height": 720})
        context.add_init_script(NO_MSE)
        page = context.new_page()
        page.goto(f"{base}/")
        if page.evaluate("document.createElement('video').canPlayType('application/vnd.apple.mpegurl')") == "":
            raise AssertionError("this Chromium plays no HLS; the HLS page test needs one that does")
        _plays(page, "cam_1", 320, 30)
        assert _tile(page, "cam_1", "tile.dataset.playback") == "hls"
        assert "/cam_1/live.m3u8" in _tile(page, "cam_1", "video.currentSrc")
        context.close()
        assert proc.terminate()[0] == 0, proc.stderr


@pytest.mark.serial  # many cameras and a browser: alone, so the box is not starved for others
def test_with_neither_nine_cameras_show_jpegs_one_request_at_a_time_and_the_page_stays_usable(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    """Nine endless MJPEG responses would hold all six of the browser's connections to the box: a
    tap would open nothing and a reload would wait. One JPEG at a time per tile leaves room."""
    cams = fake_cameras(count=9, size="320x180", fps=10, gop=10, bitrate=200)
    port = free_port()
    config = write_ingest_config(tmp_path / "camctl.yaml", cams.urls, nats_server.url, port)
    base = f"http://127.0.0.1:{port}"
    with Ingest(config, tmp_path / "d"):
        wait_for("nine cameras online", lambda: _online(base) == 9, 40)
        context = browser.new_context(**PHONE)
        context.add_init_script(NO_MSE + NO_HLS)
        page = context.new_page()
        page.goto(f"{base}/")
        picture = "tile.querySelector('img.mjpeg').naturalWidth"
        wait_for("a picture in the first tile", lambda: _tile(page, "cam1", picture) == 320, 20)
        assert _tile(page, "cam1", "tile.dataset.playback") == "jpeg"
        first = _tile(page, "cam1", "tile.querySelector('img.mjpeg').src")
        wait_for("the next picture", lambda: _tile(page, "cam1", "tile.querySelector('img.mjpeg').src") != first, 10)

        started = time.monotonic()
        page.locator('.tile[data-camera="cam1"]').tap()
        wait_for("the camera opened by a tap", lambda: page.evaluate("location.pathname") == "/cam1/", 5)
        page.keyboard.press("Escape")
        page.reload(timeout=15000)
        wait_for("the page again, every tile", lambda: page.locator(".tile").count() == 9, 15)
        wait_for("pictures again", lambda: _tile(page, "cam1", picture) == 320, 15)
        assert time.monotonic() - started < 20
        context.close()


@pytest.mark.serial  # many cameras and a browser: alone, so the box is not starved for others
def test_only_what_is_seen_streams_tiles_scrolled_away_and_a_hidden_page_stop(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=12, size="320x180", fps=10, gop=10, bitrate=200)
    port = free_port()
    config = write_ingest_config(tmp_path / "camctl.yaml", cams.urls, nats_server.url, port)
    base = f"http://127.0.0.1:{port}"
    with Ingest(config, tmp_path / "d"):
        wait_for("twelve cameras online", lambda: _online(base) == 12, 40)
        context = browser.new_context(viewport={"width": 390, "height": 400}, has_touch=True, is_mobile=True)
        page = context.new_page()
        page.goto(f"{base}/")
        wait_for("the first tile playing", lambda: (_tile(page, "cam1", "video.videoWidth") or 0) > 0, 20)

        def seen() -> set[str]:
            return set(
                page.evaluate("""() => [...document.querySelectorAll('.tile')].filter(t => {
                const r = t.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })
                .map(t => t.dataset.camera)""")
            )

        def watched() -> set[str]:
            return {c["camera_id"] for c in _statuses(base) if c.get("viewers")}

        top = seen()
        assert 2 <= len(top) < 12 and "cam1" in top and "cam12" not in top, top
        wait_for("only the tiles on screen watched", lambda: watched() == top, 15)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        bottom = seen()
        assert "cam12" in bottom and "cam1" not in bottom, bottom
        wait_for("the tiles scrolled to watched, the others let go", lambda: watched() == bottom, 15)
        wait_for("the last tile playing", lambda: (_tile(page, "cam12", "video.videoWidth") or 0) > 0, 15)

        # the page hidden (another tab, a locked phone): every stream stops; seen again: back at once
        visibility = """state => {
            Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
            document.dispatchEvent(new Event('visibilitychange')); }"""
        page.evaluate(visibility, "hidden")
        wait_for("no viewer while hidden", lambda: not watched(), 15)
        page.evaluate(visibility, "visible")
        wait_for("watched again", lambda: watched() == bottom, 10)
        context.close()


def _touch_drag(page: Any, x_from: float, x_to: float, y: float, steps: int = 8) -> None:
    """A finger's drag, as the touchscreen sends it (Chromium's touch events, so pointer events of
    type touch reach the page)."""
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, x: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", x_from)
    for step in range(1, steps + 1):
        touch("touchMove", x_from + (x_to - x_from) * step / steps)
    touch("touchEnd", x_to)
    cdp.detach()


def _shown_seconds(track: Any) -> float:
    start, end = track.get_attribute("data-start"), track.get_attribute("data-end")
    return round(_epoch(end) - _epoch(start)) if start and end else 0.0


def _recorded_seconds(listing: str) -> float:
    spans = json.loads(http_get(listing)[2])["spans"]
    return sum(_epoch(s["end"]) - _epoch(s["start"]) for s in spans)


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _statuses(base: str) -> list[dict[str, Any]]:
    code, _headers, body = http_get(f"{base}/status")
    cameras: list[dict[str, Any]] = json.loads(body)["cameras"] if code == 200 else []
    return cameras


def _online(base: str) -> int:
    return sum(1 for c in _statuses(base) if c.get("online"))


def _ffprobe_frames(url: str) -> dict[str, Any]:
    """What ffprobe decodes from a few seconds of the playlist: the picture size and frame count."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-read_intervals", "%+3", "-select_streams", "v:0",
         "-show_entries", "stream=width,height,nb_read_frames", "-of", "json", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    stream = json.loads(out.stdout)["streams"][0]
    return {"size": (stream["width"], stream["height"]), "frames": int(stream.get("nb_read_frames") or 0)}
