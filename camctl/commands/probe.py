"""`camctl probe`: is each camera reachable, what does it really send?"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from camctl.config import CameraConfig, StreamView, stream_view
from camctl.errors import CameraError, ExitStatus
from camctl.media.connect import open_source
from camctl.media.decode import first_frame, open_decoder
from camctl.media.encoders import CodecCheck, check_decoders, check_encoders
from camctl.media.meter import StreamMeter
from camctl.media.source import TCP_REFUSED

DEFAULT_MEASURE_SECONDS = 2.0


@dataclass(frozen=True)
class ProbeResult:
    camera_id: str
    url: str  # masked
    online: bool
    error: str | None = None
    error_kind: str | None = None  # auth, unreachable, timeout
    codec: str | None = None
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # measured
    claimed_fps: float | None = None  # announced by the camera
    bitrate_kbps: float | None = None  # measured
    gop: int | None = None  # frames between keyframes, measured
    gop_seconds: float | None = None
    transport: str | None = None
    first_frame_ms: float | None = None  # from connecting to the first decoded picture
    measured_seconds: float | None = None
    audio: dict[str, Any] | None = None  # codec, sample_rate, channels, when the camera sends audio

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def probe_camera(camera: StreamView, timeout: float, seconds: float = DEFAULT_MEASURE_SECONDS) -> ProbeResult:
    """With `transport: auto` the result names the transport that worked, so that it can be set:
    TCP is tried first, UDP when the camera refuses TCP."""
    if camera.transport != "auto" or not camera.url.startswith(("rtsp://", "rtsps://")):
        return _probe(camera, timeout, seconds)
    over_tcp = _probe(replace(camera, transport="tcp"), timeout, seconds)
    if over_tcp.online or not (over_tcp.error or "").startswith(TCP_REFUSED):
        return over_tcp
    return _probe(replace(camera, transport="udp"), timeout, seconds)


def _probe(camera: StreamView, timeout: float, seconds: float) -> ProbeResult:
    started = time.monotonic()
    try:
        with open_source(camera, timeout) as source:
            packets = source.packets()
            decoder = open_decoder(source.info)
            frame, used = first_frame(packets, decoder, camera.label, started + timeout)
            first_ms = (time.monotonic() - started) * 1000
            meter = StreamMeter(source.info.time_base)
            for packet in used:
                meter.add(packet.pts, packet.size, packet.is_keyframe)
            # Measure at least `seconds` of video and, if it comes soon enough, a second keyframe.
            wall_limit = time.monotonic() + 3 * seconds + 1
            for packet in packets:
                meter.add(packet.pts, packet.size, packet.is_keyframe)
                span = meter.span_seconds
                if (span >= seconds and meter.keyframes >= 2) or span >= 3 * seconds:
                    break
                if time.monotonic() > wall_limit:
                    break
            info = source.info
    except CameraError as exc:
        return ProbeResult(camera.label, camera.display_url, False, exc.reason, exc.kind, transport=camera.transport)
    fps = meter.fps
    gop = meter.gop
    return ProbeResult(
        camera_id=camera.label,
        url=camera.display_url,
        online=True,
        codec=info.codec,
        profile=info.profile,
        width=frame.width,
        height=frame.height,
        fps=_round(fps, 2),
        claimed_fps=_round(info.claimed_fps, 2),
        bitrate_kbps=_round(meter.bitrate_kbps, 1),
        gop=gop,
        gop_seconds=_round(gop / fps, 2) if gop and fps else None,
        transport=info.transport,
        first_frame_ms=round(first_ms, 1),
        measured_seconds=round(meter.span_seconds, 2),
        audio=info.audio.to_json() if info.audio else None,
    )


def probe_cameras(
    cameras: list[CameraConfig], timeout: float | None = None, seconds: float = DEFAULT_MEASURE_SECONDS
) -> list[ProbeResult]:
    """All cameras at once, every stream of each (cam_1, then cam_1/sub), results in the order given."""
    views = [stream_view(cam, name) for cam in cameras for name in cam.streams]
    if not views:
        return []
    with ThreadPoolExecutor(max_workers=len(views), thread_name_prefix="probe") as pool:
        futures = [
            pool.submit(probe_camera, view, view.timeout if timeout is None else timeout, seconds) for view in views
        ]
        return [f.result() for f in futures]


def probe_exit_status(results: list[ProbeResult]) -> ExitStatus:
    """4 if any camera refused our credentials (the operator must act), else 3 if any is down."""
    if any(r.error_kind == "auth" for r in results):
        return ExitStatus.AUTH
    if any(not r.online for r in results):
        return ExitStatus.UNREACHABLE
    return ExitStatus.OK


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def probe_codecs() -> list[CodecCheck]:
    """`camctl probe --encoders`: every encoder and decoder camctl knows, opened for real at 1080p."""
    return check_encoders() + check_decoders()
