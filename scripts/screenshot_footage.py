#!/usr/bin/env python3
"""A camera's recorded footage as an operator sees it, for docs/: run-all on a fake camera that
goes off the air for a while, then its page playing a moment from before the outage, with the
timeline zoomed to a minute and a range selected for download. Photographed by Chromium.

    .venv/bin/python scripts/screenshot_footage.py --out docs/footage-view.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import CamctlProcess, FakeCameras, NatsServer, chromium_binary, free_port
from tests.ingest_helpers import http_get


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/footage-view.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="camctl-shot-"))
    try:
        with FakeCameras(count=1, size="1280x720", fps=15, bitrate=1500).start() as cams, NatsServer() as nats:
            port = free_port()
            config = work / "camctl.yaml"
            config.write_text(
                f"cameras:\n  cam_2: {{url: '{cams.url()}', name: 'Driveway'}}\n"
                f"storage: {{root: '{work / 'rec'}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
                f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\ningest: {{stall_seconds: 2}}\n"
                "node: nvr-garage\n"
            )
            with CamctlProcess(config, work / "data", "run-all"):
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while http_get(f"{base}/cam2/frame.jpg")[0] != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(20)
                cams.down("cam1")
                time.sleep(8)
                cams.up("cam1")
                time.sleep(18)
                spans = json.loads(http_get(f"{base}/api/recordings/cam2?start=-5m")[2])["spans"]
                moment = _epoch(spans[0]["start"]) + 12
                stamp = datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium_binary(),
                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
                    )
                    page = browser.new_page(viewport={"width": 1280, "height": 820})
                    page.goto(f"{base}/cam2/?t={quote(stamp)}")
                    page.click('button[data-zoom="1m"]')
                    page.wait_for_selector("video[data-time]", timeout=20000)
                    track = page.locator(".tile.chosen .track")
                    box = track.bounding_box()
                    assert box is not None
                    y = box["y"] + box["height"] / 2
                    page.mouse.move(box["x"] + box["width"] * 0.62, y)
                    page.mouse.down()
                    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=4)
                    page.mouse.up()
                    page.wait_for_selector("video[data-time]", timeout=20000)
                    time.sleep(2)  # let it play a little, as a person would look at it
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.out))
                    browser.close()
        print(args.out)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
