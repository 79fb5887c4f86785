"""Transcoded recording: the camera's stream re-encoded at a target bitrate, and the bitrate
controller stepping down at a keyframe when the storage budget shrinks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

from camctl.config import CameraConfig, TranscodeConfig, stream_view
from camctl.encoding.bitrate import DiskUsage, StorageBudget
from camctl.encoding.transcode import Transcoder
from camctl.media.source import Packet, StreamInfo
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import segment_files, wait_for

TARGET = 300_000


def bitrate_of(files: list[Path]) -> tuple[float, float]:
    """(bits per second, frames per second) over the files' summed durations, from the files."""
    seconds, size, frames = 0.0, 0, 0
    for path in files:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.demux(stream) if _.size)
            assert container.duration is not None
            seconds += container.duration / 1_000_000
        size += path.stat().st_size
        frames += count
    return size * 8 / seconds, frames / seconds


def test_a_transcoded_recording_is_within_15_percent_of_its_target(
    fake_cameras: Callable[..., FakeCameras], camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    cams = fake_cameras(count=2, size="640x360", fps=15, bitrate=1500)
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        "cameras:\n"
        f"  cam_1: {{url: '{cams.url('cam1')}', transcode: {{bitrate: 300k, encoder: libx264}}}}\n"
        f"  cam_2: '{cams.url('cam2')}'\n"  # the same camera, stream copy: what it really sends
        f"storage: {{root: '{root}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
    )
    result = camctl_process("--config", str(config), "record", "--duration", "13s", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "transcoding h264 640x360 to libx264 at 300 kbps" in result.stderr
    transcoded, transcoded_fps = bitrate_of(segment_files(root, "cam_1"))
    copied, _copied_fps = bitrate_of(segment_files(root, "cam_2"))
    assert copied > 2 * TARGET, f"the camera sends {copied / 1000:.0f} kbps: more than the target"
    assert abs(transcoded - TARGET) <= 0.15 * TARGET, f"{transcoded / 1000:.0f} kbps for a 300 kbps target"
    assert abs(transcoded_fps - 15) < 0.5, f"{transcoded_fps:.2f} fps: every frame of the camera re-encoded"
    summary = {c["camera_id"]: c for c in json.loads(result.text)["cameras"]}
    assert summary["cam_1"]["gaps"] == 0 and summary["cam_1"]["dropped_frames"] == 0


class Collect:
    """The consumer behind the transcoder: keeps what it is handed."""

    def __init__(self) -> None:
        self.info: StreamInfo | None = None
        self.packets: list[tuple[int, int, bool]] = []  # (pts, size, keyframe)

    def on_connected(self, info: StreamInfo) -> None:
        self.info = info

    def on_packet(self, packet: Packet, arrived: float) -> None:
        self.packets.append((int(packet.pts or 0), packet.size, packet.is_keyframe))

    def on_offline(self, reason: str, kind: str) -> None: ...

    def on_stopped(self) -> None: ...


class Disk:
    def __init__(self) -> None:
        self.free = 10**12

    def __call__(self, _root: Path) -> DiskUsage:
        return DiskUsage(self.free, 0)


def camera_packets(seconds: int, fps: int = 15, size: tuple[int, int] = (320, 240)) -> tuple[StreamInfo, list[Any]]:
    """A camera's H.264 packets (1.5 Mbps), made ahead of time: no waiting on a clock."""
    width, height = size
    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = width, height, "yuv420p", Fraction(1, fps)
    enc.bit_rate, enc.gop_size, enc.max_b_frames = 1_500_000, fps, 0
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packets: list[Any] = []
    with av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi") as source:
        for n, frame in enumerate(source.decode(video=0)):
            if n == seconds * fps:
                break
            picture = frame.reformat(format="yuv420p")
            picture.pts, picture.pict_type = n, PictureType.NONE
            for packet in enc.encode(picture):
                packet.time_base = Fraction(1, fps)
                packets.append(packet)
    return StreamInfo("h264", None, width, height, float(fps), Fraction(1, fps), None, "tcp"), packets


class PacedClock:
    """Stands in for the transcoder's clock: moves only when the camera's next frame is due, so
    decoding and encoding take no time of it: a calm box."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_the_transcoder_lowers_its_bitrate_at_a_keyframe_when_the_storage_budget_shrinks(tmp_path: Path) -> None:
    info, packets = camera_packets(12)
    disk = Disk()
    budget = StorageBudget(tmp_path, 86400.0, streams=1, probe=disk, every=0)
    camera = stream_view(CameraConfig(id="cam_1", url="rtsp://127.0.0.1:1/cam1"), "main")
    out = Collect()
    clock = PacedClock(1000.0)  # the packets come at once, but at the camera's pace for the ladder: calm
    transcoder = Transcoder(
        camera, TranscodeConfig(bitrate=800_000, encoder="libx264", min_bitrate=100_000), out, budget, clock=clock
    )
    transcoder.on_connected(info)
    for n, packet in enumerate(packets):
        if n == 3 * 15:  # at 3 s the disk fills up: 2.7 GB left for a day is 250 kbps
            disk.free = int(250_000 * 86400 / 8)
        clock.now += 1 / 15
        transcoder.on_packet(packet, 1000.0 + n / 15)
    transcoder.on_stopped()
    assert out.info is not None and out.info.codec == "h264" and (out.info.width, out.info.height) == (320, 240)
    assert transcoder.bitrate == 250_000 and transcoder.controller.reason == "storage budget"
    keys = [pts for pts, _size, key in out.packets if key]
    assert [round(pts / 90000) for pts in keys[:5]] == [0, 2, 4, 6, 8], "a keyframe every 2 s"

    def kbps(start: float, end: float) -> float:
        sizes = [size for pts, size, _ in out.packets if start * 90000 <= pts < end * 90000]
        return sum(sizes) * 8 / (end - start) / 1000

    assert kbps(0, 4) > 600, "full rate before the disk filled up"
    # the change lands at the keyframe at 4 s (the first one after 3 s), not mid-GOP
    assert kbps(4, 12) < 350, f"{kbps(4, 12):.0f} kbps after the budget shrank"


def test_run_all_shows_the_transcode_bitrate_in_status_and_metrics(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        "cameras:\n  cam_1: {url: 'demo:?size=320x240&fps=10', transcode: {bitrate: 200k, encoder: libx264}}\n"
        f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )

    def status() -> dict[str, Any]:
        code, _headers, body = http_get(f"http://127.0.0.1:{port}/status")
        cameras = json.loads(body)["cameras"] if code == 200 else []
        return cameras[0] if cameras and cameras[0].get("transcode_fps") else {}

    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        cam = wait_for("the transcode bitrate in status", status, timeout=30)
        wait_for("a transcoded segment", lambda: len(segment_files(root, "cam_1")) >= 2, timeout=30)
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        assert proc.terminate()[0] == 0, proc.stderr
    assert cam["transcode_bitrate_kbps"] == 200 and cam["transcode_reason"] == "configured"
    assert cam["transcode_preset"] == "veryfast" and cam["transcode_fps"] == 10  # the ladder's top rung
    assert isinstance(cam["transcode_ladder"], list)
    # the worker re-encodes the live decoder's pictures (one decode): every frame, on the camera's clock
    bitrate, fps = bitrate_of(segment_files(root, "cam_1")[:-1])  # the finished segments
    assert abs(fps - 10) < 0.5, f"{fps:.2f} fps"
    assert bitrate < 300_000, f"{bitrate / 1000:.0f} kbps for a 200 kbps target"
    assert 'camctl_transcode_bitrate_kbps{camera="cam_1"' in metrics
    assert 'camctl_transcode_fps{camera="cam_1"' in metrics
    assert "transcoding h264 320x240 to libx264 at 200 kbps, preset veryfast" in proc.stderr


def test_the_transcoder_steps_its_preset_down_before_its_frame_rate_and_back_up_when_calm(tmp_path: Path) -> None:
    info, packets = camera_packets(12, size=(1280, 720))
    camera = stream_view(CameraConfig(id="cam_1", url="rtsp://127.0.0.1:1/cam1"), "main")
    out = Collect()
    transcoder = Transcoder(camera, TranscodeConfig(bitrate=1_000_000, encoder="libx264", min_bitrate=250_000), out)
    transcoder.on_connected(info)
    # Squeezed: the camera's packets come faster than real time (all at once), so decoding and
    # encoding take all of the time between keyframes; the ladder goes down a rung per GOP.
    for n, packet in enumerate(packets[: 8 * 15]):
        transcoder.on_packet(packet, 1000.0 + n / 15)
    steps = [(s.frm, s.to) for s in transcoder.ladder.steps]
    assert steps[:3] == [("veryfast @ 15 fps", "superfast @ 15 fps"), ("superfast @ 15 fps", "ultrafast @ 15 fps"),
                         ("ultrafast @ 15 fps", "ultrafast @ 7.5 fps")], steps  # fmt: skip
    assert all(s.reason.startswith("transcoding took") for s in transcoder.ladder.steps)
    squeezed = transcoder.ladder_state()
    assert squeezed["transcode_preset"] == "ultrafast" and squeezed["transcode_fps"] == 7.5
    # Calm again (the camera's pace, work costing nothing of it): back up a rung per 4 quiet GOPs.
    clock = PacedClock(time.monotonic())
    transcoder.clock = clock
    for n, packet in enumerate(packets * 3):
        clock.now += 1 / 15
        transcoder.on_packet(packet, 2000.0 + n / 15)
    transcoder.on_stopped()
    climbed = [s.to for s in transcoder.ladder.steps[3:]]
    assert climbed == ["ultrafast @ 15 fps", "superfast @ 15 fps", "veryfast @ 15 fps"], climbed
    assert all(s.reason.startswith("calm") for s in transcoder.ladder.steps[3:])
    # Every rung change landed on a keyframe: the recorder's stream stays one valid stream.
    keys = [pts for pts, _size, key in out.packets if key]
    assert len(keys) >= 8
