#!/usr/bin/env python3
"""Glass-to-screen latency of camctl's live page in WebKitGTK (Safari's engine), from element
screenshots of the camera's <video>: run-all on one stamped fake camera (capture time in its bottom
rows, encoded live with x264 zerolatency), MiniBrowser driven through WebKitWebDriver on Xvfb.
tests/webkit.py's webkit_glass_to_screen does the measuring; scripts/bench_live.py can call it.

    .venv/bin/python scripts/webkit_latency.py --samples 100 --size 1280x720 --fps 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.webkit import WebKitBrowser, check_webkit, summary_ms, webkit_glass_to_screen


def wait_online(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _h, body = http_get(f"{base}/status")
        cameras = json.loads(body)["cameras"] if status == 200 else []
        if cameras and all(c["online"] for c in cameras):
            return
        time.sleep(0.2)
    raise SystemExit("the camera did not come online")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two screenshots")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of playing before the first")
    parser.add_argument("--whole-video", action="store_true", help="screenshots of the whole <video>")
    args = parser.parse_args()
    check_webkit()
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        work = Path(folder)
        cams = stack.enter_context(
            FakeCameras(count=1, size=args.size, fps=args.fps, gop=2 * args.fps, bitrate=2000, stamp=True)
        )
        nats = stack.enter_context(NatsServer())
        port = free_port()
        config = work / "camctl.yaml"
        config.write_text(
            f"cameras:\n  cam_1: '{cams.url()}'\n"
            f"storage: {{root: '{work / 'rec'}', retention: {{min_free: null}}}}\n"
            f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
        )
        proc = stack.enter_context(CamctlProcess(config, work / "data", "run-all"))
        base = f"http://127.0.0.1:{port}"
        wait_online(base)
        browser = stack.enter_context(WebKitBrowser(compositing=False))
        details: dict[str, Any] = {}
        latencies = webkit_glass_to_screen(browser.driver, base + "/", "cam_1", args.samples,
                                           interval=args.interval, settle=args.settle,
                                           whole_video=args.whole_video, details=details)  # fmt: skip
        proc.terminate()
    print(json.dumps({
        "latency_ms": summary_ms(latencies) | {"misread": details["misread"]},
        "screenshot_half_round_trip_ms": summary_ms(details["half_round_trip_ms"]),
        "way": details["way"],
        "lag_s_at_end": details["lag_s"],
        "playback_rate_at_end": details["playback_rate"],
        "distinct_frames": len(set(details["frames"])),
        "camera": f"{args.size} {args.fps} fps, GOP 2 s, x264 zerolatency (stamped, encoded live)",
        "browser": "WebKitGTK MiniBrowser on Xvfb (software rendering)",
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
