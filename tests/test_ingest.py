"""`camctl ingest` with real fake-cameras and a real nats-server: the seed's payloads, the JPEG
behind each event, health flips on an outage, and a NATS restart that ingest survives."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import av
import nats
import nats.errors
import pytest

from camctl.bus.subjects import FRAME_SUBJECT, SNAPSHOT_SUBJECT, STATUS_SUBJECT
from tests.conftest import Result
from tests.harness import FakeCameras, NatsServer, free_port, read_stamp
from tests.ingest_helpers import Event, EventTap, Ingest, http_get, write_ingest_config
from tests.recording_helpers import wait_for
from tests.test_probe import PASSWORD

FRAME_KEYS = {"camera_id": str, "timestamp": float, "frame_number": int, "resolution": str, "fps": (int, float),
              "url": str}  # fmt: skip
STATUS_KEYS = {"camera_id": str, "online": bool, "fps": (int, float), "bitrate_kbps": (int, float),
               "dropped_frames": int, "uptime_seconds": (int, float)}  # fmt: skip


def ingest_config(tmp_path: Path, cams: FakeCameras, nats_url: str, port: int, count: int = 2) -> Path:
    urls = {f"cam_{i}": cams.url(f"cam{i}") for i in range(1, count + 1)}
    extra = "ingest: {status_interval: 1s, stall_seconds: 2s}\nnode: test-node\n"
    return write_ingest_config(tmp_path / "camctl.yaml", urls, nats_url, port, extra)


def is_frame(cam: str) -> Callable[[Event], bool]:
    return lambda e: e[0] == FRAME_SUBJECT and e[1]["camera_id"] == cam


def is_status(cam: str, online: bool) -> Callable[[Event], bool]:
    return lambda e: e[0] == STATUS_SUBJECT and e[1]["camera_id"] == cam and e[1]["online"] is online


def test_events_follow_the_seed_and_their_url_serves_the_frame(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=2, size="640x360", fps=15, audio="aac")  # most cameras also send audio
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port)
    with EventTap(nats_server.url, [FRAME_SUBJECT, STATUS_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        frames = {
            cam: [tap.wait(f"{cam} frames", is_frame(cam), 20)[1] for _ in range(20)] for cam in ("cam_1", "cam_2")
        }
        status = tap.wait("cam_1 online", is_status("cam_1", True), 10)[1]
        latest = frames["cam_1"][-1]
        code, headers, jpeg = http_get(latest["url"])
        unknown = http_get(f"http://127.0.0.1:{port}/cam_9/frame.jpg")[0]
        tricks = [http_get(f"http://127.0.0.1:{port}{p}")[0] for p in ("/../etc/passwd", "/cam1%2F..%2Fx/frame.jpg",
                                                                      "/cam1/../status/frame.jpg")]  # fmt: skip
        health = http_get(f"http://127.0.0.1:{port}/healthz")
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        small = http_get(latest["url"] + "?width=320&quality=50")
        exit_status, took = ingest.terminate()
    for cam, events in frames.items():
        for event in events:
            # the seed's frame payload first, then the analysed stream and the shared-memory ring's keys
            extra = {"stream", "ring", "ring_write"}
            assert list(event)[:6] == list(FRAME_KEYS) and set(event) - set(FRAME_KEYS) <= extra
            assert all(isinstance(event[k], t) for k, t in FRAME_KEYS.items()), event
            assert event["resolution"] == "640x360" and event["camera_id"] == cam
            assert event["url"] == f"http://127.0.0.1:{port}/{cam.replace('_', '')}/frame.jpg"
        numbers = [e["frame_number"] for e in events]
        assert numbers == sorted(set(numbers)), "frame numbers increase"
        assert abs(events[-1]["timestamp"] - time.time()) < 30
        assert 10 <= events[-1]["fps"] <= 20
    assert all(isinstance(status[k], t) for k, t in STATUS_KEYS.items()), status
    assert status["node"] == "test-node" and status["uptime_seconds"] >= 0 and status["dropped_frames"] >= 0
    assert status["audio"] == {"codec": "aac", "sample_rate": 16000, "channels": 1}

    assert code == 200 and jpeg[:2] == b"\xff\xd8" and headers["Content-Type"] == "image/jpeg"
    assert int(headers["X-Frame-Number"]) >= latest["frame_number"]
    assert small[0] == 200 and len(small[2]) < len(jpeg)
    assert unknown == 404 and tricks == [404, 404, 404]
    assert health[0] == 200 and b'"online": 2' in health[2]
    assert 'camctl_camera_fps{camera="cam_1"' in metrics and "camctl_event_latency_ms_bucket" in metrics
    assert exit_status == 0 and took < 5, ingest.stderr


def test_an_outage_flips_status_and_frame_numbers_go_on_across_the_reconnect(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15)
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port, count=1)
    with EventTap(nats_server.url, [FRAME_SUBJECT, STATUS_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        before = tap.wait("a frame", is_frame("cam_1"), 20)[1]["frame_number"]
        down_at = time.time()
        cams.down("cam1")
        _s, offline, offline_at = tap.wait("offline status", is_status("cam_1", False), 10)
        assert offline_at - down_at <= 2 + 1, "offline within stall_seconds + 1 s"
        assert offline["error"]
        code, _h, body = http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg")
        assert code == 503 and b"camera offline" in body
        cams.up("cam1")
        up_at = time.time()
        _s, _online, online_at = tap.wait("online again", is_status("cam_1", True), 10)
        assert online_at - up_at <= 3, f"back online {online_at - up_at:.1f}s after the camera returned"
        after = tap.wait("a frame after the outage", is_frame("cam_1"), 10)[1]
        assert after["frame_number"] > before
        status = http_get(f"http://127.0.0.1:{port}/status")[2]
        assert b'"reconnects": 1' in status
        assert ingest.terminate()[0] == 0


@pytest.mark.timeout(90)
def test_ingest_survives_a_nats_restart(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15)
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port, count=1)
    nats_port = nats_server.port
    with Ingest(config, tmp_path / "d") as ingest:
        with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap:
            tap.wait("a frame", is_frame("cam_1"), 20)
        nats_server.stop()
        first = int(http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg")[1]["X-Frame-Number"])
        time.sleep(1.0)  # NATS stays away for a while; ingest must keep decoding meanwhile
        second = int(http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg")[1]["X-Frame-Number"])
        assert second > first, "frames keep coming while NATS is down"
        nats_server.start(port=nats_port)
        with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap:
            event = tap.wait("frames again after the restart", is_frame("cam_1"), 20)[1]
        assert event["frame_number"] > second
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        dropped = next(line for line in metrics.splitlines() if line.startswith("camctl_events_dropped_total"))
        assert int(dropped.split()[1]) > 0, "events during the outage were counted as dropped"
        assert ingest.terminate()[0] == 0


def test_snapshot_is_warm_when_ingest_runs_and_nats_request_reply_serves_jpeg(
    fake_cameras: Callable[..., FakeCameras],
    nats_server: NatsServer,
    camctl: Callable[..., Result],
    tmp_path: Path,
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15)
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port, count=1)
    out = tmp_path / "warm.jpg"
    with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        tap.wait("a frame", is_frame("cam_1"), 20)
        warm = camctl("--config", str(config), "snapshot", "cam1", "-o", str(out), "--width", "320")
        reply = nats_request(nats_server.url, f"{SNAPSHOT_SUBJECT}.cam_1", b'{"quality": 70}')
        none = nats_request(nats_server.url, f"{SNAPSHOT_SUBJECT}.cam_9", b"", timeout=0.5)
        bad = [nats_request(nats_server.url, f"{SNAPSHOT_SUBJECT}.cam_1", body)
               for body in (b'{"quality": Infinity}', b'{"width": 1e9}', b"[1]", b"{not json")]  # fmt: skip
        assert ingest.terminate()[0] == 0
    for answer in bad:  # before: Infinity got no reply at all (an OverflowError in the handler)
        assert answer is not None and answer[0] == b"" and answer[1]["Camctl-Error"].startswith("bad request")
    assert warm.returncode == 0, warm.stderr
    assert "(warm)" in warm.stderr and "320x180" in warm.stderr and out.read_bytes()[:2] == b"\xff\xd8"
    assert reply is not None and reply[0][:2] == b"\xff\xd8" and int(reply[1]["Camctl-Frame-Number"]) > 0
    assert none is None, "no node has cam_9: nobody answers"
    cold = camctl("--config", str(config), "snapshot", "cam_1", "-o", str(out))
    assert cold.returncode == 0 and "(cold)" in cold.stderr


def nats_request(url: str, subject: str, body: bytes, timeout: float = 5.0) -> tuple[bytes, dict[str, str]] | None:
    async def ask() -> tuple[bytes, dict[str, str]] | None:
        nc = await nats.connect(url)
        try:
            msg = await nc.request(subject, body, timeout=timeout)
            return msg.data, dict(msg.headers or {})
        except nats.errors.TimeoutError:
            return None
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_status_shows_every_camera_and_exits_3_when_one_is_offline(
    fake_cameras: Callable[..., FakeCameras],
    nats_server: NatsServer,
    camctl: Callable[..., Result],
    tmp_path: Path,
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15)
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port, count=1)
    # A second camera on a port where nothing listens.
    text = config.read_text().replace("cameras:\n", f"cameras:\n  cam_2: rtsp://127.0.0.1:{free_port()}/x\n", 1)
    config.write_text(text)
    with EventTap(nats_server.url, [STATUS_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        tap.wait("cam_1 online", is_status("cam_1", True), 20)
        result = camctl("--config", str(config), "status", "--json")
        table = camctl("--config", str(config), "status")
        assert ingest.terminate()[0] == 0
    assert result.returncode == 3, result.stderr
    rows = {c["camera_id"]: c for c in json.loads(result.text)["cameras"]}
    assert rows["cam_1"]["online"] is True and rows["cam_1"]["node"] == "test-node"
    assert rows["cam_2"]["online"] is False and "connection refused" in rows["cam_2"]["error"]
    assert table.returncode == 3 and "cam_2" in table.text and "connection refused" in table.text
    nobody = camctl("--config", str(config), "status")
    assert nobody.returncode == 3 and "no camctl service answered" in nobody.stderr


def test_concurrent_jpeg_requests_of_one_frame_are_served_and_do_not_crash(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Regression: two threads scaling the same decoded frame at once crashed the process."""
    port = free_port()
    config = write_ingest_config(
        tmp_path / "camctl.yaml", {"cam_1": "'demo:?size=640x360&fps=15'"}, nats_server.url, port
    )
    base = f"http://127.0.0.1:{port}/cam1/frame.jpg"
    with Ingest(config, tmp_path / "d") as ingest:
        wait_for("a frame", lambda: http_get(f"http://127.0.0.1:{port}/healthz")[2].find(b'"online": 1') > 0, 20)
        deadline = time.monotonic() + 1.5

        def client(n: int) -> list[int]:
            codes = []
            while time.monotonic() < deadline:
                codes.append(http_get(base + ("", "?width=320", "?quality=40")[n % 3])[0])
            return codes

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = [c for batch in pool.map(client, range(8)) for c in batch]
        assert ingest.proc.poll() is None, ingest.stderr
        assert len(codes) > 50 and set(codes) == {200}
        assert ingest.terminate()[0] == 0


def test_frame_jpg_is_the_frame_its_header_names(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    """The cameras stamp their own frame counter into the picture: between two fetches, camctl's
    X-Frame-Number advances exactly as the stamp in the JPEG does, so header and picture agree."""
    cams = fake_cameras(count=1, size="640x360", fps=15, stamp=True)
    port = free_port()
    config = ingest_config(tmp_path, cams, nats_server.url, port, count=1)
    url = f"http://127.0.0.1:{port}/cam1/frame.jpg?quality=95"
    with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        # The server's first picture is its preroll, without a stamp: start a little later.
        tap.wait("a few frames", lambda e: is_frame("cam_1")(e) and e[1]["frame_number"] >= 5, 20)
        first = http_get(url)
        tap.wait("a few more frames", lambda e: e[1]["frame_number"] >= int(first[1]["X-Frame-Number"]) + 10, 10)
        second = http_get(url)
        again = http_get(url)
        assert ingest.terminate()[0] == 0
    numbers = [int(r[1]["X-Frame-Number"]) for r in (first, second)]
    stamps = [jpeg_stamp(r[2])[0] for r in (first, second)]
    assert numbers[1] - numbers[0] == stamps[1] - stamps[0] >= 10
    if again[1]["X-Frame-Number"] == second[1]["X-Frame-Number"]:
        assert again[2] == second[2], "the same frame is served from the cache, byte for byte"


def jpeg_stamp(jpeg: bytes) -> tuple[int, float]:
    with av.open(io.BytesIO(jpeg), format="mjpeg") as container:
        picture = next(container.decode(video=0))
    plane = picture.planes[0]
    assert (picture.width, picture.height) == (640, 360)
    return read_stamp(bytes(plane), picture.width, picture.height, plane.line_size)


def test_no_password_in_any_output_and_refused_credentials_show_in_status(
    fake_cameras: Callable[..., FakeCameras],
    nats_server: NatsServer,
    camctl: Callable[..., Result],
    tmp_path: Path,
) -> None:
    cams = fake_cameras(count=2, size="640x360", fps=15, auth=f"admin:{PASSWORD}")
    port = free_port()
    urls = {
        "cam_1": f"{{url: '{cams.url('cam1')}', username: admin, password: '{PASSWORD}'}}",
        "cam_2": f"{{url: '{cams.url('cam2')}', username: admin, password: 'wrong-{PASSWORD}'}}",
    }
    extra = "ingest: {status_interval: 1s, stall_seconds: 2s}\n"
    config = write_ingest_config(tmp_path / "camctl.yaml", urls, nats_server.url, port, extra)
    with EventTap(nats_server.url, [FRAME_SUBJECT, STATUS_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        tap.wait("cam_1 online", is_status("cam_1", True), 20)
        refused = tap.wait("cam_2 refused", lambda e: is_status("cam_2", False)(e) and e[1]["error"] is not None, 20)
        outputs = [
            http_get(f"http://127.0.0.1:{port}{p}")[2].decode(errors="replace")
            for p in ("/status", "/metrics", "/healthz", "/cam2/frame.jpg")
        ]
        status = camctl("--config", str(config), "status", "--json")
        table = camctl("--config", str(config), "status")
        assert ingest.terminate()[0] == 0
    assert refused[1]["error"] == "authentication refused"
    assert status.returncode == 3 and json.loads(status.text)
    events = []
    while not tap.events.empty():
        events.append(json.dumps(tap.events.get()[1]))
    for text in [*outputs, *events, status.text, status.stderr, table.text, ingest.stderr]:
        assert PASSWORD not in text


def test_analysis_fps_thins_frame_events_and_mjpeg_streams_frames(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    camera = {"cam_1": "{url: 'demo:?size=320x240&fps=15', analysis_fps: 3}"}
    config = write_ingest_config(tmp_path / "camctl.yaml", camera, nats_server.url, port)
    with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap, Ingest(config, tmp_path / "d") as ingest:
        first = tap.wait("a frame", is_frame("cam_1"), 20)
        last = first
        for _ in range(9):
            last = tap.wait("more frames", is_frame("cam_1"), 5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cam1/stream.mjpeg", timeout=5) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            head = stream.read(4096)
        assert ingest.terminate()[0] == 0
    rate = 9 / (last[2] - first[2])
    assert 2.0 <= rate <= 4.0, f"{rate:.1f} events/s for analysis_fps 3 (the camera sends 15)"
    assert last[1]["frame_number"] - first[1]["frame_number"] >= 9 * 4, "frame numbers count every frame"
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg") and b"\xff\xd8" in head


def test_a_malformed_http_request_is_one_warning_line_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras: {{cam_1: 'demo:?size=160x120&fps=5'}}\nnats: {{url: 'nats://127.0.0.1:{free_port()}'}}\n"
                      f"storage: {{root: '{tmp_path / 'rec'}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n")  # fmt: skip
    with Ingest(config, tmp_path / "d") as ingest:
        wait_for("the server", lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 20)
        for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(garbage)
                assert sock.recv(64).startswith(b"HTTP/1.0 400"), "answered 400"
        assert ingest.terminate()[0] == 0
    log = ingest.stderr
    assert "Traceback" not in log and " ERROR aiohttp" not in log
    assert "WARNING aiohttp.server: bad HTTP request (Error handling request from 127.0.0.1): 400" in log
