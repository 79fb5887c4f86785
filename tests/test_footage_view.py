"""Recorded footage in a real browser (Debian's Chromium through Playwright): the timeline of a
stamped camera with an outage, playing from a clicked moment, the exported range, the link to a
moment, and back to live."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port, read_stamp
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for

FPS, GOP = 10, 10  # one keyframe a second
STAMP_JS = """video => {
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const luma = new Array(canvas.width * canvas.height);
  for (let i = 0; i < luma.length; i++) luma[i] = rgba[4 * i + 1];
  return {width: canvas.width, height: canvas.height, luma: luma, time: video.dataset.time || null};
}"""


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def on_screen(page: Any) -> tuple[float, float]:
    """(stamped capture time of the frame the video shows, the time the page says it is)."""
    shown = page.eval_on_selector('video[data-camera="cam_1"]', STAMP_JS)
    _number, stamped = read_stamp(bytes(shown["luma"]), shown["width"], shown["height"])
    return stamped, epoch(shown["time"])


def click_at(page: Any, moment: float) -> None:
    track = page.locator('.timeline[data-camera="cam_1"] .track')
    start, end = epoch(track.get_attribute("data-start")), epoch(track.get_attribute("data-end"))
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * (moment - start) / (end - start), box["y"] + box["height"] / 2)


def test_the_timeline_shows_an_outage_plays_a_clicked_moment_exports_a_range_and_links_to_a_moment(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="320x240", fps=FPS, gop=GOP, stamp=True)
    port, root = free_port(), tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: '{cams.url()}'\n"
        f"storage: {{root: '{root}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\ningest: {{stall_seconds: 2}}\n"
    )
    base = f"http://127.0.0.1:{port}"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("recording", lambda: http_get(f"{base}/cam1/frame.jpg")[0] == 200, timeout=30)
        time.sleep(14)  # footage before the outage (the camera's own time passing, nothing to await)
        cams.down("cam1")
        time.sleep(8)  # the outage
        cams.up("cam1")

        def after_outage() -> list[dict[str, Any]] | None:
            spans = json.loads(http_get(f"{base}/api/recordings/cam1?start=-5m")[2])["spans"]
            return spans if len(spans) == 2 and epoch(spans[1]["end"]) - epoch(spans[1]["start"]) > 10 else None

        spans = wait_for("footage after the outage", after_outage, timeout=40)

        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/cam1/")
        page.click('.tile[data-camera="cam_1"] button[data-zoom="1m"]')
        timeline = '.timeline[data-camera="cam_1"]'
        wait_for("two spans on the timeline", lambda: page.locator(f"{timeline} .span").count() == 2, timeout=10)
        reasons = page.eval_on_selector_all(f"{timeline} .gap", "gaps => gaps.map(g => g.dataset.reason)")
        assert any("404" in r or "not found" in r or "offline" in r or "ended" in r for r in reasons), reasons

        # click a moment in the first span: the frame on screen was captured then
        moment = epoch(spans[0]["start"]) + 5.3
        click_at(page, moment)
        wait_for("footage playing", lambda: page.get_attribute('video[data-camera="cam_1"]', "data-time"), timeout=20)
        page.eval_on_selector('video[data-camera="cam_1"]', "v => v.pause()")
        stamped, said = on_screen(page)
        assert abs(stamped - moment) <= GOP / FPS + 0.5, f"clicked {moment:.2f}, the frame was captured {stamped:.2f}"
        assert abs(said - stamped) <= 0.3, "the time under the video is the frame's capture time"
        assert page.get_attribute('.tile[data-camera="cam_1"] .badge', "data-online") == "recorded"

        # the link to the moment on screen opens that camera playing from it
        share = page.get_attribute('.tile[data-camera="cam_1"] a.share', "href")
        assert share.startswith("/cam1/?t=")
        other = browser.new_page(viewport={"width": 1280, "height": 800})
        other.goto(base + share)
        wait_for("the shared moment playing", lambda: other.get_attribute('video[data-camera="cam_1"]', "data-time"),
                 timeout=20)  # fmt: skip
        other.eval_on_selector('video[data-camera="cam_1"]', "v => v.pause()")
        shared_stamp, _said = on_screen(other)
        assert abs(shared_stamp - said) <= GOP / FPS + 0.5
        other.close()

        # drag over a range of the second span: "download" exports exactly its frames
        first, last = epoch(spans[1]["start"]) + 2.0, epoch(spans[1]["start"]) + 6.0
        track = page.locator(f"{timeline} .track")
        box = track.bounding_box()
        start, end = epoch(track.get_attribute("data-start")), epoch(track.get_attribute("data-end"))
        x = lambda t: box["x"] + box["width"] * (t - start) / (end - start)  # noqa: E731
        page.mouse.move(x(first), box["y"] + 10)
        page.mouse.down()
        page.mouse.move(x(last), box["y"] + 10, steps=5)
        page.mouse.up()
        href = page.get_attribute('.tile[data-camera="cam_1"] a.download', "href")
        code, headers, mp4 = http_get(base + href, timeout=20)
        assert code == 200 and "attachment" in headers["Content-Disposition"]
        with av.open(io.BytesIO(mp4)) as container:
            stamps = [read_stamp(bytes(f.planes[0]), f.width, f.height, f.planes[0].line_size)
                      for f in container.decode(video=0)]  # fmt: skip
        numbers = [n for n, _t in stamps]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "no frame lost or doubled"
        picked = epoch(headers["X-Footage-Start"])
        assert picked - 0.3 <= first and first - picked <= GOP / FPS + 0.3, "from the keyframe at or before"
        assert abs(stamps[0][1] - picked) <= 0.3 and stamps[-1][1] >= last - 0.3

        # back to live
        page.click('.tile[data-camera="cam_1"] button.live')
        wait_for("live again", lambda: page.get_attribute('.tile[data-camera="cam_1"] .badge', "data-online") == "true",
                 timeout=15)  # fmt: skip
        assert page.get_attribute('video[data-camera="cam_1"]', "data-time") is None
        page.close()
        assert proc.terminate()[0] == 0
