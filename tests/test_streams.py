"""Streams and roles against real RTSP cameras with a main and a sub stream: one session per stream
a role names, events from the sub, the main not decoded until a still of it is asked for,
keyframe-only analysis, and a sub stream that goes away while the main keeps recording."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from camctl.bus.subjects import FRAME_SUBJECT
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import EventTap, Ingest, http_get
from tests.recording_helpers import segment_files, wait_for

MAIN_SIZE, SUB_SIZE = "640x360", "320x180"


def two_stream_config(path: Path, cams: FakeCameras, nats_url: str, port: int, extra: str = "", **camera: str) -> Path:
    settings = "".join(f"    {k}: {v}\n" for k, v in camera.items())
    path.write_text(
        "cameras:\n  cam_1:\n    streams:\n"
        f"      main: {cams.url('cam1')}\n      sub: {cams.url('cam1', 'sub')}\n{settings}"
        f"nats: {{url: '{nats_url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
        f"ingest: {{status_interval: 1s, stall_seconds: 2s}}\nnode: test\n{extra}"
    )
    return path


def camera_status(port: int, cam: str = "cam_1") -> dict[str, Any]:
    """The camera's status, or {} while the server is not answering yet."""
    code, _headers, body = http_get(f"http://127.0.0.1:{port}/status")
    cameras = json.loads(body)["cameras"] if code == 200 else []
    found: dict[str, Any] = next((c for c in cameras if c["camera_id"] == cam), {})
    return found


def stream_state(port: int, stream: str, key: str) -> Any:
    return camera_status(port).get("streams", {}).get(stream, {}).get(key)


def test_two_streams_are_two_sessions_events_come_from_the_sub_and_the_main_is_decoded_only_for_a_still(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size=MAIN_SIZE, fps=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port)
    with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap, Ingest(config, tmp_path / "d"):
        events = [tap.wait("cam_1 frames", lambda e: e[1]["camera_id"] == "cam_1", 20)[1] for _ in range(10)]
        wait_for("the sub's fps measured", lambda: (stream_state(port, "sub", "fps") or 0) > 0, 10)
        before = camera_status(port)
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        sessions = cams.sessions()
        # Consumers of the stream that is already open: still two sessions.
        tile = http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg")
        still = http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg?stream=main")
        wrong = http_get(f"http://127.0.0.1:{port}/cam1/frame.jpg?stream=third")
        after = camera_status(port)
        shot = camctl("--config", str(config), "snapshot", "cam_1", "-o", str(tmp_path / "shot.jpg"))
        sub_shot = camctl("--config", str(config), "snapshot", "cam_1", "-s", "sub", "-o", str(tmp_path / "s.jpg"))
        sessions_after = cams.sessions()
    assert all(e["resolution"] == SUB_SIZE and e["stream"] == "sub" for e in events), events[-1]
    assert sessions == sessions_after == {"/cam1": 1, "/cam1/sub": 1}
    main, sub = before["streams"]["main"], before["streams"]["sub"]
    assert (main["decode"], main["decoder"], main["decoded_frames"]) == ("off", None, 0), main
    assert main["fps"] > 0 and main["bitrate_kbps"] > 0 and main["roles"] == ["record", "snapshot"]
    assert sub["decode"] == "full" and sub["decoded_frames"] > 0 and sub["roles"] == ["analysis", "live", "grid"]
    assert 'camctl_stream_decode{camera="cam_1",stream="main",node="test",mode="off"} 1' in metrics, metrics
    assert 'camctl_stream_decode{camera="cam_1",stream="sub",node="test",mode="full"} 1' in metrics
    assert tile[0] == 200 and tile[1]["X-Image-Size"] == SUB_SIZE and tile[1]["X-Camera-Stream"] == "sub"
    assert still[0] == 200 and still[1]["X-Image-Size"] == MAIN_SIZE and still[1]["X-Camera-Stream"] == "main"
    assert wrong[0] == 404 and b"no stream 'third'" in wrong[2]
    assert after["streams"]["main"]["decoded_frames"] > 0 and after["streams"]["main"]["decode"] == "full"
    assert shot.returncode == 0 and sub_shot.returncode == 0, shot.stderr + sub_shot.stderr
    for path, size in ((tmp_path / "shot.jpg", MAIN_SIZE), (tmp_path / "s.jpg", SUB_SIZE)):
        with av.open(str(path)) as jpeg:
            picture = jpeg.streams.video[0].codec_context
            assert f"{picture.width}x{picture.height}" == size, "a snapshot is the main stream's, full size"


def test_analysis_at_the_keyframe_rate_decodes_keyframes_only(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size=MAIN_SIZE, fps=15, gop=15)  # a keyframe a second, no sub stream
    port = free_port()
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: {{url: '{cams.url('cam1')}', analysis_fps: 1}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )
    with EventTap(nats_server.url, [FRAME_SUBJECT]) as tap, Ingest(config, tmp_path / "d"):
        wait_for("keyframes only", lambda: stream_state(port, "main", "decode") == "keyframes", 20)
        first = camera_status(port)["streams"]["main"]
        since = time.time()  # the events of the full decode before the keyframe rate was known: past
        events = [tap.wait("cam_1 frames", lambda e: e[1]["timestamp"] > since, 10) for _ in range(4)]
        last = camera_status(port)["streams"]["main"]
    decoded = last["decoded_frames"] - first["decoded_frames"]
    seconds = events[-1][1]["timestamp"] - events[0][1]["timestamp"]
    # One picture decoded per GOP (a second here), not fifteen.
    assert decoded <= seconds + 3, f"{decoded} pictures decoded in {seconds:.1f} s of keyframe-only analysis"
    numbers = [e[1]["frame_number"] for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "each keyframe is an event"
    assert first["keyframe_interval"] is not None and 0.8 <= first["keyframe_interval"] <= 1.2


def test_a_missing_sub_stream_goes_offline_with_its_reason_while_the_main_keeps_recording(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size=MAIN_SIZE, fps=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    root = tmp_path / "rec"
    storage = f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port, storage)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("both streams online", lambda: camera_status(port).get("online"), 30)
        cams.down("cam1/sub")
        wait_for("the sub offline", lambda: stream_state(port, "sub", "online") is False, 20)
        recorded = len(segment_files(root, "cam_1"))
        wait_for("the main still recording", lambda: len(segment_files(root, "cam_1")) >= recorded + 2, 20)
        status = camera_status(port)
        assert proc.terminate()[0] == 0, proc.stderr
    assert status["online"] is False and status["error"].startswith("sub: "), status
    assert status["streams"]["main"]["online"] is True and status["recording"] == "recording"
    assert not (root / "cam_1.sub").exists(), "a sub stream without the record role is not recorded"


def test_recording_main_and_sub_keeps_each_streams_footage_apart_and_serves_it_by_stream(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size=MAIN_SIZE, fps=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    root = tmp_path / "rec"
    storage = f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port, storage,
                               roles="{record: [main, sub]}")  # fmt: skip
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("two segments of each stream", lambda: len(segment_files(root, "cam_1")) >= 2
                 and len(segment_files(root, "cam_1.sub")) >= 2, 30)  # fmt: skip
        listing = json.loads(http_get(f"http://127.0.0.1:{port}/api/recordings/cam1?stream=sub")[2])
        clip = http_get(f"http://127.0.0.1:{port}{listing['spans'][0]['url']}")
        disks = json.loads(http_get(f"http://127.0.0.1:{port}/api/recordings")[2])["cameras"]
        unknown = http_get(f"http://127.0.0.1:{port}/api/recordings/cam1?stream=third")[0]
        status = camera_status(port)
        assert proc.terminate()[0] == 0, proc.stderr
    assert listing["camera_id"] == "cam_1" and listing["stream"] == "sub" and "stream=sub" in listing["spans"][0]["url"]
    assert clip[0] == 200
    with av.open(io.BytesIO(clip[2])) as container:
        video = container.streams.video[0].codec_context
        assert f"{video.width}x{video.height}" == SUB_SIZE, "the sub stream's footage"
    assert {(c["camera_id"], c["stream"]) for c in disks} == {("cam_1", "main"), ("cam_1", "sub")}
    assert unknown == 404
    assert status["streams"]["sub"]["recording"] == status["streams"]["main"]["recording"] == "recording"
    both = camctl("--config", str(config), "recordings", "cam_1", "--stream", "sub", "--json")
    assert both.returncode == 0 and json.loads(both.text)["cameras"][0]["camera_id"] == "cam_1.sub"
    out = tmp_path / "sub.mp4"
    cut = camctl("--config", str(config), "clip", "cam_1", "--stream", "sub", "--from", "-5m", "-o", str(out))
    assert cut.returncode == 0, cut.stderr
    bad = camctl("--config", str(config), "clip", "cam_1", "--stream", "third", "--from", "-5m", "-o", str(out))
    assert bad.returncode == 2 and "no stream 'third'" in bad.stderr


def test_tiles_play_the_sub_stream_and_a_chosen_camera_plays_the_main(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size=MAIN_SIZE, fps=15, sub=f"{SUB_SIZE}@10")
    port = free_port()
    storage = f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = two_stream_config(tmp_path / "camctl.yaml", cams, nats_server.url, port, storage)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("both streams online", lambda: camera_status(port).get("online"), 30)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(f"http://127.0.0.1:{port}/")
        tile = page.locator('.tile[data-camera="cam_1"]')
        wait_for("the tile playing the sub", lambda: _video_width(page) == 320 and tile.get_attribute("data-stream")
                 == "sub", 20)  # fmt: skip
        viewers_tiled = {n: s["viewers"] for n, s in camera_status(port)["streams"].items()}
        tile.click()  # the camera chosen: full size, from the main stream
        wait_for("the chosen camera playing the main", lambda: _video_width(page) == 640, 20)
        assert tile.get_attribute("data-stream") == "main"
        wait_for("the server's viewer moved to main", lambda: stream_state(port, "main", "viewers") == 1, 10)
        page.keyboard.press("Escape")
        wait_for("back to the sub", lambda: _video_width(page) == 320, 20)
        page.close()
        assert proc.terminate()[0] == 0, proc.stderr
    assert viewers_tiled == {"main": 0, "sub": 1}


def _video_width(page: Any) -> int:
    return int(page.evaluate("() => document.querySelector('video[data-camera=\"cam_1\"]')?.videoWidth ?? 0"))
