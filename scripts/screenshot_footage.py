#!/usr/bin/env python3
"""A camera's recorded footage as an operator sees it, for docs/: run-all on a fake camera (a still
scene) in which something moves for a few seconds (`camctl motion` marks it) and which goes off the
air for a while, then its page playing the moment something moved, with the timeline zoomed to a
minute and a range selected for download. Photographed by Chromium.

    .venv/bin/python scripts/screenshot_footage.py --out docs/footage-view.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import CamctlProcess, FakeCameras, NatsServer, chromium_binary, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def photograph(url: str, out: Path, prepare: Callable[[Any], None]) -> None:
    """The page at url in Chromium (1280x820), made ready by prepare(page), saved as a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_binary(), args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.goto(url)
            prepare(page)
            time.sleep(1.5)  # let it play a little, as a person would look at it
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/footage-view.png"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camctl-shot-"))
    try:
        with (
            FakeCameras(count=1, size="1280x720", fps=15, bitrate=1500, scene=True).start() as cams,
            NatsServer() as nats,
        ):
            port = free_port()
            config = work / "camctl.yaml"
            config.write_text(
                f"cameras:\n  cam_2: {{url: '{cams.url()}', name: 'Driveway'}}\n"
                f"storage: {{root: '{work / 'rec'}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
                f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\ningest: {{stall_seconds: 2}}\n"
                "node: nvr-garage\ndefaults: {motion: {hold: 1s}}\n"
            )
            with CamctlProcess(config, work / "data", "run-all"):
                base = f"http://127.0.0.1:{port}"
                wait_for("cam2 serving", lambda: http_get(f"{base}/cam2/frame.jpg")[0] == 200, timeout=30)
                motion = subprocess.Popen([sys.executable, "-m", "camctl", "--config", str(config), "motion"])
                time.sleep(10)
                cams.move("cam1")  # something crosses the driveway for 4 s
                time.sleep(4)
                cams.still("cam1")
                time.sleep(6)
                motion.terminate()
                motion.wait(15)
                cams.down("cam1")
                time.sleep(8)
                cams.up("cam1")
                time.sleep(18)
                spans = json.loads(http_get(f"{base}/api/recordings/cam2?start=-5m")[2])["spans"]
                moved = json.loads(http_get(f"{base}/api/recordings/cam2?start=-5m")[2])["motion"]
                moment = _epoch(moved[0]["start"]) + 1 if moved else _epoch(spans[0]["start"]) + 12
                stamp = datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")

                def select_a_moment(page: Any) -> None:
                    page.click('button[data-zoom="1m"]')
                    page.wait_for_selector("video[data-time]", timeout=20000)
                    track = page.locator(".tile.chosen .track")
                    box = track.bounding_box()
                    assert box is not None
                    y = box["y"] + box["height"] / 2
                    shown = track.evaluate("t => [t.dataset.start, t.dataset.end]")
                    low, high = _epoch(shown[0]), _epoch(shown[1])
                    # select where something moved (or a stretch after the outage): it plays from there
                    since, until = (_epoch(moved[0]["start"]), _epoch(moved[0]["end"]) + 1) if moved else (
                        low + 0.62 * (high - low), low + 0.8 * (high - low))  # fmt: skip
                    page.mouse.move(box["x"] + box["width"] * (since - low) / (high - low), y)
                    page.mouse.down()
                    page.mouse.move(box["x"] + box["width"] * (until - low) / (high - low), y, steps=4)
                    page.mouse.up()
                    page.wait_for_selector("video[data-time]", timeout=20000)

                photograph(f"{base}/cam2/?t={quote(stamp)}", args.out, select_a_moment)
        print(args.out)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
