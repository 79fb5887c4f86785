"""Recording never waits for NATS: down at start, refusing our credentials, or gone mid-run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from camctl.config import parse_config
from tests.conftest import require
from tests.harness import CamctlProcess, NatsServer, free_port, nats_server_binary
from tests.ingest_helpers import http_get
from tests.recording_helpers import segment_files, wait_for

CAMERAS = "".join(f"  cam_{i}: 'demo:?size=320x240&fps=10&gop=10'\n" for i in (1, 2))


def run_all_config(tmp_path: Path, nats_url: str, port: int) -> Path:
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n{CAMERAS}"
        f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )
    assert parse_config(config.read_text()).nats.url == nats_url
    return config


def status(port: int) -> dict[str, Any]:
    code, _headers, body = http_get(f"http://127.0.0.1:{port}/status")
    return json.loads(body) if code == 200 else {}


def test_run_all_records_at_once_while_nats_is_down_and_a_restarted_worker_too(tmp_path: Path) -> None:
    require("nats-server", nats_server_binary)
    port, nats_port = free_port(), free_port()
    root = tmp_path / "rec"
    config = run_all_config(tmp_path, f"nats://127.0.0.1:{nats_port}", port)
    started = time.time()
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("a segment per camera with NATS down", lambda: all(
            segment_files(root, f"cam_{i}") for i in (1, 2)), timeout=20)  # fmt: skip
        first = min(p.stat().st_mtime for i in (1, 2) for p in segment_files(root, f"cam_{i}"))
        state = wait_for("status over HTTP", lambda: status(port).get("nats"), timeout=10)
        assert state["connected"] is False and "connection refused" in state["error"]

        # A worker restarted during the outage records at once, too.
        pid = wait_for("cam_1's worker", lambda: next(
            (c.get("worker_pid") for c in status(port).get("cameras", []) if c["camera_id"] == "cam_1"), None),
            timeout=10)  # fmt: skip
        before = set(segment_files(root, "cam_1"))
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        new = wait_for("a new cam_1 segment after the restart", lambda: set(segment_files(root, "cam_1")) - before,
                       timeout=20)  # fmt: skip
        restarted_after = min(p.stat().st_ctime for p in new) - killed

        with NatsServer().start(port=nats_port):
            wait_for("NATS connected", lambda: status(port).get("nats", {}).get("connected"), timeout=20)
            wait_for("events published by the workers", lambda: "camctl_events_published_total{camera=\"cam_2\"} 0"
                     not in http_get(f"http://127.0.0.1:{port}/metrics")[2].decode(), timeout=20)  # fmt: skip
            code, took = proc.terminate(timeout=20)
    assert code == 0, proc.stderr
    assert took < 12, f"shutdown took {took:.1f}s"
    assert first - started < 10, f"the first segment came {first - started:.1f}s after start"
    assert restarted_after < 10, f"the restarted worker's first segment came {restarted_after:.1f}s after the kill"
    refused = [line for line in proc.stderr.splitlines() if "connection refused" in line]
    assert 1 <= len(refused) <= 4, "one line per process says why, not one per retry:\n" + "\n".join(refused)


def test_nats_refusing_the_credentials_never_stops_recording_nor_leaks_the_password(tmp_path: Path) -> None:
    require("nats-server", nats_server_binary)
    port = free_port()
    root = tmp_path / "rec"
    with NatsServer(auth="camctl:right-secret") as nats:
        config = run_all_config(tmp_path, f"nats://camctl:wrong-secret@127.0.0.1:{nats.port}", port)
        with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
            wait_for("segments with NATS refusing us", lambda: all(
                len(segment_files(root, f"cam_{i}")) >= 2 for i in (1, 2)), timeout=25)  # fmt: skip
            state = status(port)["nats"]
            assert state["connected"] is False and "credentials refused" in state["error"], state
            body = http_get(f"http://127.0.0.1:{port}/status")[2].decode()
            code, took = proc.terminate(timeout=20)
    assert code == 0, proc.stderr
    assert took < 12
    assert "credentials refused" in proc.stderr
    assert "wrong-secret" not in proc.stderr + body + proc.stdout.decode()
