"""Restream: every camera published by stream copy to an RTSP server that takes ANNOUNCE/RECORD
(gst-rtsp-server in RECORD mode, standing in for mediamtx), reconnecting while it is away, never
touching recording, and never showing the target's password."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import av.error

from tests.conftest import Result, require
from tests.harness import CamctlProcess, FakeCameras, NatsServer, RtspSink, check_gst_rtsp, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import segment_files, wait_for

PASSWORD = "s3cret-publish-pw"


def _frames(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) decoded from what the sink has written so far."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, 0, 0
    frames, size = 0, (0, 0)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames, size = frames + 1, (frame.width, frame.height)
    except av.error.FFmpegError:
        pass  # the end of a file being written
    return frames, *size


def _restream(base: str) -> dict[str, dict[str, object]]:
    status, _headers, body = http_get(f"{base}/status")
    cameras = json.loads(body)["cameras"] if status == 200 else []
    return {c["camera_id"]: c.get("restream") or {} for c in cameras}


def test_run_all_publishes_every_camera_and_reconnects_while_the_server_was_away(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    require("GStreamer RTSP server", check_gst_rtsp)
    cams = fake_cameras(count=2, size="320x240", fps=15, gop=15, bitrate=300)
    sink_port, http_port = free_port(), free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    cameras = "".join(f"  cam_{i}: '{url}'\n" for i, url in enumerate(cams.urls.values(), start=1))
    config.write_text(
        f"defaults: {{restream: 'rtsp://publisher:{PASSWORD}@127.0.0.1:{sink_port}/{{camera_id}}'}}\n"
        f"cameras:\n{cameras}storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{http_port}'}}\n"
    )
    shown = camctl("--config", str(config), "config", "show")
    assert shown.returncode == 0 and PASSWORD not in shown.text
    assert f"rtsp://publisher:***@127.0.0.1:{sink_port}/cam_1" in shown.text
    base = f"http://127.0.0.1:{http_port}"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("the server's absence noticed", lambda: all(
            r.get("error") for r in _restream(base).values()) and len(_restream(base)) == 2, timeout=30)  # fmt: skip
        wait_for("recording regardless", lambda: all(len(segment_files(root, f"cam_{i}")) >= 2 for i in (1, 2)),
                 timeout=30)  # fmt: skip
        with RtspSink(tmp_path / "sink", ["cam_1", "cam_2"], port=sink_port):
            wait_for("both cameras published", lambda: all(r.get("connected") for r in _restream(base).values()),
                     timeout=40)  # fmt: skip
            for cam in ("cam_1", "cam_2"):
                wait_for(f"{cam}'s frames read back from the server",
                         lambda cam=cam: _frames(tmp_path / "sink" / f"{cam}.ts")[0] >= 30, timeout=30)  # fmt: skip
                assert _frames(tmp_path / "sink" / f"{cam}.ts")[1:] == (320, 240)
            status = json.loads(http_get(f"{base}/status")[2])
        assert proc.terminate()[0] == 0, proc.stderr
    for cam in status["cameras"]:
        assert cam["online"] and cam["recording"] == "recording"
    assert PASSWORD not in json.dumps(status)
    assert PASSWORD not in proc.stderr, "the target's password never reaches the log"
    assert "restream to rtsp://publisher:***@" in proc.stderr, "the server's absence is logged, masked"
