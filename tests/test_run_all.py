"""`camctl run-all`: recording and ingest from one session per camera, stopped cleanly."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from camctl.recording.index import build_index
from tests.conftest import Result
from tests.harness import CamctlProcess, NatsServer, free_port
from tests.ingest_helpers import http_get, write_ingest_config
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
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        for i in range(1, 5):
            wait_for(f"cam{i} frames", lambda i=i: http_get(f"http://127.0.0.1:{port}/cam{i}/frame.jpg")[0] == 200,
                     timeout=30)  # fmt: skip
        wait_for("a finished segment per camera", lambda: all(
            len(segment_files(root, f"cam_{i}")) >= 2 for i in range(1, 5)), timeout=30)  # fmt: skip
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])
        assert proc.terminate()[0] == 0, proc.stderr
    assert {c["camera_id"]: c["recording"] for c in status["cameras"]} == {f"cam_{i}": "recording" for i in range(1, 5)}
    text = proc.stderr
    assert "frames      http://" in text and str(root) in text, "it says where to look"
    for cam, index in build_index(root).items():
        assert index.segments and all(s.journalled for s in index.segments), f"{cam}: every segment finished"
        for seg in index.segments:
            frames = segment_frames(seg.path)
            assert frames[0][1] and len(frames) == seg.frames
    listing = camctl("--config", str(config), "recordings", "--json")
    assert listing.returncode == 0 and len(json.loads(listing.text)["cameras"]) == 4


def test_sighup_adds_and_removes_cameras_without_touching_the_others_and_logs_json(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    port = free_port()
    root = tmp_path / "rec"

    def write(cameras: list[int]) -> Path:
        urls = {f"cam_{i}": "'demo:?size=320x240&fps=10&gop=10'" for i in cameras}
        extra = f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        return write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)

    def frame_number(cam: int) -> int:
        code, headers, _body = http_get(f"http://127.0.0.1:{port}/cam{cam}/frame.jpg")
        return int(headers["X-Frame-Number"]) if code == 200 else 0

    config = write([1, 2])
    with CamctlProcess(config, tmp_path / "d", "--log-format", "json", "run-all", name="run-all") as proc:
        wait_for("cam1 and cam2", lambda: frame_number(1) > 0 and frame_number(2) > 0, timeout=30)
        before = frame_number(1)
        write([1, 3])
        proc.proc.send_signal(signal.SIGHUP)
        wait_for("cam3 after SIGHUP", lambda: frame_number(3) > 0, timeout=20)
        wait_for("cam2 gone", lambda: http_get(f"http://127.0.0.1:{port}/cam2/frame.jpg")[0] == 404, timeout=10)
        status = {c["camera_id"]: c for c in json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"]}
        assert frame_number(1) > before
        assert proc.terminate()[0] == 0, proc.stderr
    assert set(status) == {"cam_1", "cam_3"}
    assert status["cam_1"]["reconnects"] == 0 and status["cam_1"]["frames"] > before, "cam_1 was not restarted"
    assert index_complete(root, "cam_2"), "the removed camera's segment was finished"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any("SIGHUP: config reloaded" in r["message"] for r in records)


def index_complete(root: Path, camera_id: str) -> bool:
    index = build_index(root, [camera_id])[camera_id]
    return bool(index.segments) and all(s.journalled for s in index.segments)


def test_a_killed_camera_worker_is_restarted_while_the_others_go_on(
    nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    port = free_port()
    urls = {f"cam_{i}": "'demo:?size=320x240&fps=10&gop=10'" for i in (1, 2, 3)}
    extra = f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)

    def cameras() -> dict[str, dict[str, Any]]:
        code, _h, body = http_get(f"http://127.0.0.1:{port}/status")
        return {c["camera_id"]: c for c in json.loads(body)["cameras"]} if code == 200 else {}

    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("3 cameras running", lambda: len([c for c in cameras().values() if c.get("frames", 0) >= 10]) == 3,
                 timeout=30)  # fmt: skip
        before = cameras()
        os.kill(before["cam_2"]["worker_pid"], signal.SIGKILL)  # a child of the run-all this test started
        # the supervisor reports why the worker went, from the kill until the new worker answers
        down: dict[str, dict[str, Any]] = {}

        def reported_killed() -> bool:
            down.update(cameras())
            return "SIGKILL" in down["cam_2"].get("error", "")

        wait_for("cam_2 reported killed", reported_killed, timeout=10)
        wait_for("cam_2 restarted", lambda: cameras()["cam_2"]["online"], timeout=20)
        after = cameras()
        offline_table = camctl("--config", str(config), "status")
        assert proc.terminate()[0] == 0, proc.stderr
    assert "killed by SIGKILL" in down["cam_2"]["error"]
    assert after["cam_2"]["restarts"] == 1 and after["cam_2"]["worker_pid"] != before["cam_2"]["worker_pid"]
    for cam in ("cam_1", "cam_3"):
        assert after[cam]["frames"] > before[cam]["frames"], f"{cam} kept going"
        assert down[cam]["online"] and after[cam]["reconnects"] == 0
        assert after[cam]["restarts"] == 0 and after[cam]["worker_pid"] == before[cam]["worker_pid"]
    assert offline_table.returncode == 0
    assert "worker" in proc.stderr and "SIGKILL" in proc.stderr
    metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert metrics[0] == 0, "the service is gone after SIGTERM"


def test_workers_do_not_outlive_a_killed_supervisor(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    urls = {f"cam_{i}": "'demo:?size=320x240&fps=10'" for i in (1, 2)}
    extra = f"storage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n"
    config = write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:

        def pids() -> list[int]:
            code, _h, body = http_get(f"http://127.0.0.1:{port}/status")
            cams = json.loads(body)["cameras"] if code == 200 else []
            return [c["worker_pid"] for c in cams if c.get("worker_pid")]

        workers = wait_for("2 workers", lambda: len(pids()) == 2 and pids(), timeout=30)
        proc.proc.kill()  # SIGKILL: no chance to stop its workers itself
        proc.proc.wait(10)
        wait_for("the workers gone", lambda: not any(alive(pid) for pid in workers), timeout=10)


def test_a_worker_still_starting_when_its_supervisor_is_killed_stops_too(tmp_path: Path) -> None:
    """The kernel's parent-death signal covers a worker only once it asked for it: a supervisor
    killed while its worker still imports (a second or two) must not leave it recording alone
    (holding the camera's session and recording lock against the next run-all)."""
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: 'demo:?size=320x240&fps=10'\nhttp: {{listen: '127.0.0.1:{free_port()}'}}\n"
                      f"storage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n")  # fmt: skip
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:

        def worker() -> int | None:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and alive(int(entry.name)):
                    try:
                        stat = (entry / "stat").read_text().rpartition(")")[2].split()
                        argv = (entry / "cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if int(stat[1]) == proc.proc.pid and b"worker" in argv:
                        return int(entry.name)
            return None

        pid = wait_for("the worker started", worker, timeout=60, interval=0.01)  # a starved box: slow to spawn
        proc.proc.kill()  # at once: the worker is still importing
        proc.proc.wait(10)
        wait_for("the orphaned worker gone", lambda: not alive(pid), timeout=20)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie waiting to be reaped has stopped


def test_run_all_keeps_the_configured_grid_fed_by_the_camera_workers(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    grid_file = tmp_path / "grid" / "grid.mp4"
    urls = {f"cam_{i}": "'demo:?size=320x240&fps=10&gop=10'" for i in (1, 2)}
    extra = (
        f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"grid: {{output: '{grid_file}', size: 640x240, fps: 10, bitrate: 500k, preset: superfast}}\n"
    )
    config = write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("the grid writing", lambda: grid_file.exists() and grid_file.stat().st_size > 20_000, timeout=30)
        status = {c["camera_id"]: c for c in json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"]}
        assert list(status) == ["cam_1", "cam_2"], "the grid is not a camera"
        os.kill(status["cam_2"]["worker_pid"], signal.SIGKILL)  # a child of the run-all this test started

        def cam_2_back() -> bool:
            cams = {c["camera_id"]: c for c in json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"]}
            return bool(cams["cam_2"]["online"] and cams["cam_2"].get("restarts") == 1)

        wait_for("cam_2's worker restarted", cam_2_back, timeout=20)
        grid = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["grid"]
        assert grid["running"] and grid["restarts"] == 0
        # what it encodes, from the grid worker: the pinned preset, the ladder's frame rate, frames
        assert grid["preset"] == "superfast" and grid["encoded_fps"] == 10 and grid["frames"] > 0, grid
        assert grid["ladder"] == [] or all("reason" in step for step in grid["ladder"])
        assert "camctl_grid_fps " in http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        os.kill(grid["pid"], signal.SIGKILL)  # the grid, a child of this run-all, crashes

        def grid_back() -> bool:
            now = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["grid"]
            return bool(now["running"] and now["restarts"] == 1)

        wait_for("the grid restarted, and /status says so", grid_back, timeout=20)
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        assert "camctl_grid_restarts_total 1" in metrics
        assert proc.terminate()[0] == 0, proc.stderr
    assert "grid: worker started" in proc.stderr and "grid 640x240 at 10 fps" in proc.stderr
    assert "connected" in proc.stderr and proc.stderr.count("cam_1: connected") == 1, "one RTSP session per camera"
    times = []
    with av.open(str(grid_file)) as container:  # finished by SIGTERM: plays to its end
        for frame in container.decode(video=0):
            times.append(frame.time or 0.0)
            assert (frame.width, frame.height) == (640, 240)
    assert len(times) >= 20
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the new worker's start-up competes for the CPU: a few ticks may go, the grid never stalls
    assert max(gaps) <= 1.0, "the grid went on while cam_2's worker restarted"
    assert len(times) >= 0.8 * 10 * (times[-1] - times[0]), "about 10 frames per second of grid"


def test_run_all_with_its_port_taken_says_so_in_one_line_before_any_banner(
    nats_server: NatsServer, camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    camctl = camctl_process  # run-all: a process even when it ought to stop at once
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "camctl.yaml"
        config.write_text(f"cameras: {{cam_1: 'demo:'}}\nnats: {{url: '{nats_server.url}'}}\n"
                          f"http: {{listen: '127.0.0.1:{port}'}}\n")  # fmt: skip
        result = camctl("--config", str(config), "run-all", timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"camctl: cannot listen on 127.0.0.1:{port}: Address already in use; is another camctl running? (camctl status)"
    ]


def test_a_64_character_camera_id_under_a_long_tmpdir_gets_its_worker_and_a_too_long_one_is_said(
    nats_server: NatsServer, camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    """Before: the socket was named after the camera id, and a long TMPDIR made the worker
    crash-loop on "AF_UNIX path too long" while /healthz said ok."""
    camera = "c" * 64
    port = free_port()
    # 40 characters under /tmp: with the id in the socket's name, the address took 139 bytes of 107.
    tmpdir = Path(tempfile.mkdtemp(prefix="t" * 40))
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras: {{{camera}: 'demo:?size=160x120&fps=5'}}\nnats: {{url: '{nats_server.url}'}}\n"
                      f"storage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n"
                      f"http: {{listen: '127.0.0.1:{port}'}}\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"TMPDIR": str(tmpdir)}
    with (tmp_path / "long.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "camctl", "--config", str(config), "run-all"], env=env,
                                stderr=log)  # fmt: skip
        try:
            frame = f"http://127.0.0.1:{port}/{camera}/frame.jpg"
            wait_for("the camera's frames", lambda: http_get(frame)[0] == 200, 30)
            assert json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[2])["workers_running"] == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            shutil.rmtree(tmpdir, ignore_errors=True)
    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    result = camctl_process("--config", str(config), "run-all", TMPDIR=str(deep), timeout=30)  # TMPDIR: a process's
    assert result.returncode == 2 and "TMPDIR is too long for the workers' unix sockets" in result.stderr
    assert "camctl run-all:" not in result.stderr, "said before the banner"


def test_healthz_is_503_when_cameras_are_configured_and_no_worker_runs() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from camctl.config import parse_config
    from camctl.runall.children import Worker
    from camctl.runall.front import Front

    config = parse_config("cameras: {cam_1: 'demo:'}\n", "c.yaml", environ={})
    workers = {"cam_1": Worker("cam_1", Path("/nonexistent.sock"), camera=config.cameras["cam_1"])}

    async def run() -> tuple[int, dict[str, Any]]:
        async with TestClient(TestServer(Front(workers, lambda: config, lambda: None).app())) as client:
            response = await client.get("/healthz")
            return response.status, await response.json()

    status, body = asyncio.run(run())
    assert status == 503 and body == {"ok": False, "cameras": 1, "workers_running": 0}


def test_a_hundred_cameras_on_a_small_box_are_warned_about_before_they_start(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    """Before: 100 cameras took about 70 MB per worker (7 GB) without a word."""
    from camctl.runall.children import memory_warning

    assert memory_warning(4, total=8 * 2**30) is None, "the seed's four cameras fit a Jetson"
    warning = memory_warning(100, total=8 * 2**30)
    assert warning is not None and "100 cameras need about 6.8 GB of this box's 8.0 GB" in warning
    config = tmp_path / "camctl.yaml"
    cameras = "".join(f"  cam_{i}: 'demo:'\n" for i in range(2000))  # beyond any test box's memory
    config.write_text(f"cameras:\n{cameras}")
    check = camctl("--config", str(config), "config", "check", "--json")
    assert check.returncode == 0 and "run-all starts a worker per camera" in json.loads(check.text)["warnings"][-1]


@pytest.mark.serial
def test_fifty_workers_stop_together_within_their_grace_and_none_is_killed(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Before: 100 workers on two cores kept decoding for up to a second after SIGTERM, then spent
    ~0.15 s of CPU each unloading the interpreter; 95 of them outlasted the 8 s grace and were killed."""
    from camctl.runall.supervisor import STOP_GRACE

    port, count = free_port(), 50
    urls = {f"cam_{i}": "'demo:?size=160x120&fps=10'" for i in range(count)}
    extra = f"storage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n"
    config = write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("every camera's frames", lambda: all(
            http_get(f"http://127.0.0.1:{port}/cam{i}/frame.jpg")[0] == 200 for i in range(count)),
            timeout=120, interval=1)  # fmt: skip
        code, seconds = proc.terminate(timeout=STOP_GRACE + 20)
    assert code == 0, proc.stderr
    assert "killing it" not in proc.stderr
    assert seconds < 3.0, f"{count} workers took {seconds:.1f}s to stop (before: 4 s, and 100 outlasted the grace)"
