#!/usr/bin/env python3
"""The live page as an operator sees it, for docs/: run-all on four fake cameras, one of them
refusing camctl's password and one taken off the air, photographed by Chromium.

    .venv/bin/python scripts/screenshot_live_page.py --out docs/live-view.png
    .venv/bin/python scripts/screenshot_live_page.py --phone --out docs/live-view-phone.png

--phone: an iPhone-sized page with touch, as Safari on iOS plays it (no MediaSource: the tiles
play through ManagedMediaSource), the cameras with a sub stream that the tiles play.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import CamctlProcess, FakeCameras, NatsServer, chromium_binary, free_port
from tests.ingest_helpers import http_get

AS_IPHONE = "window.ManagedMediaSource = window.MediaSource; delete window.MediaSource;"  # Safari on iOS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/live-view.png"))
    parser.add_argument("--size", default="1280x720", help="the fake cameras' picture size")
    parser.add_argument("--phone", action="store_true", help="an iPhone's screen (390x844, touch, no MediaSource)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="camctl-shot-"))
    try:
        with (
            FakeCameras(count=4, size=args.size, fps=15, bitrate=1500, auth="admin:secret",
                        sub="640x360@15" if args.phone else None).start() as cams,
            NatsServer() as nats,
        ):
            port = free_port()
            names = ["Front door", "Driveway", "Garage", "Back yard"]
            lines = []
            for i, (name, url) in enumerate(zip(names, cams.urls.values(), strict=True), start=1):
                password = "wrong" if i == 4 else "secret"
                sub = cams.url(f"cam{i}", "sub") if args.phone else None
                source = f"streams: {{main: '{url}', sub: '{sub}'}}" if sub else f"url: '{url}'"
                lines.append(f"  cam_{i}: {{{source}, name: '{name}', username: admin, password: {password}}}\n")
            config = work / "camctl.yaml"
            config.write_text(
                f"cameras:\n{''.join(lines)}storage: {{root: '{work / 'rec'}', retention: {{min_free: null}}}}\n"
                f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\ningest: {{stall_seconds: 2}}\n"
                "node: nvr-garage\n"
            )
            with CamctlProcess(config, work / "data", "run-all") as proc:
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while http_get(f"{base}/cam_3/frame.jpg")[0] != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                cams.down("cam3")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium_binary(),
                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
                    )
                    if args.phone:
                        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                      has_touch=True, device_scale_factor=2)  # fmt: skip
                        context.add_init_script(AS_IPHONE)
                        page = context.new_page()
                    else:
                        page = browser.new_page(viewport={"width": 1440, "height": 860})
                    page.goto(base + "/")
                    page.wait_for_function(
                        "() => document.querySelectorAll('.badge[data-online=\"false\"]').length === 2"
                        " && [...document.querySelectorAll('video')].filter(v => v.currentTime > 1).length === 2",
                        timeout=30_000,
                    )
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.out))
                    browser.close()
                proc.terminate()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
