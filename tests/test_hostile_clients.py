"""A hostile but fair client cannot take a camera off the air: slow readers, many connections."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.harness import CamctlProcess, NatsServer, free_port
from tests.ingest_helpers import http_get, write_ingest_config
from tests.recording_helpers import wait_for

SLOW_READERS = 300


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def slow_reader(port: int, path: str) -> socket.socket:
    """A client with a 4 KB receive buffer that asks for a stream and never reads it; from
    127.0.0.2, another address than the test's own requests (limits are per client address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.bind(("127.0.0.2", 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def test_300_slow_readers_leave_the_camera_answering_and_the_front_memory_where_it_was(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    port = free_port()
    config = write_ingest_config(
        tmp_path / "camctl.yaml", {"cam_1": "'demo:?size=640x480&fps=15&gop=15'"}, nats_server.url, port,
        f"storage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n",
    )  # fmt: skip
    frame = f"http://127.0.0.1:{port}/cam1/frame.jpg"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("frames", lambda: http_get(frame)[0] == 200, timeout=30)
        for _ in range(20):  # the front's pools and caches warmed up as in normal use
            http_get(frame)
        before = rss_mb(proc.proc.pid)
        readers = [slow_reader(port, "/cam1/stream.mjpeg") for _ in range(SLOW_READERS)]
        try:
            began = time.monotonic()
            while time.monotonic() - began < 10:
                assert http_get(frame, timeout=2)[0] == 200, "frame.jpg answers while they hold on"
            answers = [sock.recv(12) for sock in readers]
        finally:
            for sock in readers:
                sock.close()
        served, refused = answers.count(b"HTTP/1.1 200"), answers.count(b"HTTP/1.1 503")
        assert (served, refused) == (32, SLOW_READERS - 32), "http.max_connections_per_client (32) served, the rest 503"
        closed = time.monotonic()
        code, _headers, _body = http_get(frame, timeout=1)
        assert code == 200 and time.monotonic() - closed < 1, "frame.jpg answers within 1 s after they close"
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])
        assert status["cameras"][0]["online"], status
        # within 10 % of where it was (it peaks at about +30 %: 32 streams' buffers)
        wait_for("the front's memory back", lambda: rss_mb(proc.proc.pid) <= before * 1.1, timeout=10)
        code, seconds = proc.terminate(timeout=15)
    assert code == 0 and seconds < 10, proc.stderr
    assert "Cannot write to closing transport" not in proc.stderr
