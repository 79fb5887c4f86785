"""`camctl run-all`: recording and ingest from one session per camera, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from camctl.recording.index import build_index
from tests.conftest import Result
from tests.harness import NatsServer
from tests.ingest_helpers import free_port, http_get
from tests.recording_helpers import segment_files, segment_frames, wait_for


def test_run_all_records_and_serves_every_camera_and_stops_cleanly(
    nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    port = free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    cams = "".join(f"  cam_{i}: 'demo:?size=320x240&fps=10&gop=10'\n" for i in range(1, 5))
    config.write_text(
        f"cameras:\n{cams}storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"CAMCTL_DATA_DIR": str(tmp_path / "d")}
    log = tmp_path / "run-all.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "camctl", "--config", str(config), "run-all"], stderr=err, env=env
        )
        try:
            for i in range(1, 5):
                wait_for(f"cam{i} frames", lambda i=i: http_get(f"http://127.0.0.1:{port}/cam{i}/frame.jpg")[0] == 200,
                         timeout=30)  # fmt: skip
            wait_for("a finished segment per camera", lambda: all(
                len(segment_files(root, f"cam_{i}")) >= 2 for i in range(1, 5)), timeout=30)  # fmt: skip
            status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert {c["camera_id"]: c["recording"] for c in status["cameras"]} == {f"cam_{i}": "recording" for i in range(1, 5)}
    text = log.read_text()
    assert "frames      http://" in text and str(root) in text, "it says where to look"
    for cam, index in build_index(root).items():
        assert index.segments and all(s.journalled for s in index.segments), f"{cam}: every segment finished"
        for seg in index.segments:
            frames = segment_frames(seg.path)
            assert frames[0][1] and len(frames) == seg.frames
    listing = camctl("--config", str(config), "recordings", "--json")
    assert listing.returncode == 0 and len(json.loads(listing.text)["cameras"]) == 4
