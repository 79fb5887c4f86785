"""camctl.client.Frames against a real run-all, a real nats-server and a stamped fake camera: frames
from shared memory whose pixels are the event's frame, JPEG from elsewhere, a worker killed and
followed, an unknown camera refused."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from camctl.analysis.ring import RING_DIR, ring_name
from camctl.client import Frame, Frames, UnknownCamera
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port, read_stamp
from tests.ingest_helpers import http_get, write_ingest_config
from tests.recording_helpers import wait_for


def online(port: int) -> bool:
    code, _headers, body = http_get(f"http://127.0.0.1:{port}/status")
    return code == 200 and all(c["online"] for c in json.loads(body)["cameras"])


def stamp_of(frame: Frame) -> int:
    """The fake camera's own frame counter, read from the picture's luma."""
    height = frame.array.shape[0] * 2 // 3 if frame.format == "yuv420p" else frame.array.shape[0]
    width = frame.array.shape[1]
    luma = frame.array[:height] if frame.format == "yuv420p" else frame.array[..., 1]  # green follows luma
    return read_stamp(luma.tobytes(), width, height)[0]


def test_frames_come_from_shared_memory_as_the_events_frames_and_follow_a_restarted_worker(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15, stamp=True)
    port, node = free_port(), f"test-{uuid.uuid4().hex[:8]}"
    config = write_ingest_config(tmp_path / "camctl.yaml", {"cam_1": cams.url("cam1")}, nats_server.url, port,
                                 f"node: {node}\nstorage: {{root: '{tmp_path / 'rec'}'}}\n")  # fmt: skip
    ring = RING_DIR / ring_name("cam_1", node)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("cam_1 online", lambda: online(port), timeout=30)
        with Frames("cam_1", nats_url=nats_server.url) as frames:
            read_through_a_worker_restart(frames, port, ring)
        assert proc.terminate()[0] == 0
    assert not ring.exists(), "the worker removes its ring when it stops"


def read_through_a_worker_restart(frames: Frames, port: int, ring: Path) -> None:
    """Frames from shared memory, each its event's picture; then the worker is killed, and the
    consumer goes on from the new worker's ring by itself."""
    got = [next(iter(frames)) for _ in range(12)]
    shm = [f for f in got if f.source == "shm"]
    assert len(shm) >= 6, [f.source for f in got]  # the first ones may come by JPEG... none here
    assert ring.exists() and oct(ring.stat().st_mode & 0o777) == "0o640"
    offsets = {stamp_of(f) - f.number for f in shm}
    assert len(offsets) == 1, f"each picture is its event's frame: stamp - frame_number = {offsets}"
    assert all(f.event["ring_write"] and f.event["frame_number"] == f.number for f in shm)
    assert shm[0].array.shape == (360 * 3 // 2, 640) and shm[0].format == "yuv420p"

    time.sleep(1.0)  # a consumer busy for a second (15 frames): it gets the newest, and is told
    late = frames.next()
    assert late.skipped >= 10 and late.number >= shm[-1].number + 11, (late.skipped, late.number)

    status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"][0]
    os.kill(status["worker_pid"], signal.SIGKILL)  # a worker crash: run-all restarts it
    wait_for("the worker restarted", lambda: json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])[
        "cameras"][0].get("restarts") == 1, timeout=30)  # fmt: skip
    after = [next(iter(frames)) for _ in range(6)]
    assert [f.source for f in after[-3:]] == ["shm"] * 3, "the consumer reattached to the new ring by itself"
    assert len({stamp_of(f) - f.number for f in after[-3:]}) == 1


def test_a_camera_that_does_not_exist_is_a_clear_error(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    config = write_ingest_config(tmp_path / "camctl.yaml", {"cam_1": "'demo:?size=160x120&fps=5'"}, nats_server.url,
                                 port, f"storage: {{root: '{tmp_path / 'rec'}'}}\n")  # fmt: skip
    with CamctlProcess(config, tmp_path / "d", "run-all"):
        wait_for("cam_1 online", lambda: online(port), timeout=30)
        with pytest.raises(UnknownCamera, match=r"unknown camera 'cam_9' \(known: cam_1\)"):
            Frames("cam_9", nats_url=nats_server.url)
