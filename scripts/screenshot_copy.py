#!/usr/bin/env python3
"""Footage that only the copy elsewhere still has, as an operator sees it, for docs/: run-all on a
fake camera copying to a real S3 server (`rclone serve s3` on loopback), a mark, then the box loses
half a minute of its footage (deleted here) and the page plays a moment of it from the copy, the
timeline drawing that stretch striped blue. Photographed by Chromium.

    .venv/bin/python scripts/screenshot_copy.py --out docs/footage-from-copy.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from screenshot_footage import photograph

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.rclone_server import RcloneServer
from tests.recording_helpers import wait_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/footage-from-copy.png"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camctl-shot-"))
    try:
        with (
            FakeCameras(count=1, size="1280x720", fps=15, bitrate=1500, scene=True).start() as cams,
            NatsServer() as nats,
            RcloneServer("s3", work / "s3") as s3,
        ):
            port, root = free_port(), work / "rec"
            config = work / "camctl.yaml"
            config.write_text(
                f"cameras:\n  cam_2: {{url: '{cams.url()}', name: 'Driveway'}}\n"
                f"storage: {{root: '{root}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
                f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\nnode: nvr-garage\n"
                f"copy: {{to: '{s3.remote}'}}\n"
            )
            base = f"http://127.0.0.1:{port}"
            with CamctlProcess(config, work / "data", "run-all", env=s3.env()):
                time.sleep(20)  # footage to keep on the box
                cams.move("cam1")
                time.sleep(25)  # the stretch the box will lose
                cams.still("cam1")
                time.sleep(20)
                mark = [sys.executable, "-m", "camctl", "--config", str(config), "mark", "cam_2", "--from", "-45s",
                        "--to", "-38s", "--label", "van at the gate"]  # fmt: skip
                subprocess.run(mark, check=True, capture_output=True, env={**os.environ, **s3.env()})
                time.sleep(10)  # copied
            journal = [json.loads(line) for line in (root / "cam_2" / "recordings.jsonl").read_text().splitlines()]
            segments = [e for e in journal if e["type"] == "segment"]
            lost = segments[5:11]  # half a minute the box no longer has
            for entry in lost:
                (root / "cam_2" / entry["file"]).unlink()
            with CamctlProcess(config, work / "data2", "run-all", env=s3.env()):
                wait_for("cam2 serving", lambda: http_get(f"{base}/cam2/frame.jpg")[0] == 200, timeout=30)
                moment = lost[2]["start"] + 1
                stamp = datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")

                def play_the_lost_moment(page: Any) -> None:
                    page.click('button[data-zoom="1m"]')
                    page.wait_for_selector("video[data-time]", timeout=30000)
                    page.wait_for_selector(".tile.chosen .span.copy", timeout=10000)

                photograph(f"{base}/cam2/?t={quote(stamp)}", args.out, play_the_lost_moment)
        print(args.out)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
