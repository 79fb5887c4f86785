"""Which video encoders work on this box, proven by opening each with the target settings.

Hardware differs: the Jetson Orin Nano has no NVENC (Orin NX/AGX and desktop GPUs do), data-centre
GPUs have NVDEC only, ARM boards may offer V4L2 M2M, Intel/AMD boxes VAAPI. A name in FFmpeg's
list proves nothing; opening an encoder at 1920x1080 does. `auto` takes the first that opened,
in the order below (hardware first, libx264 last).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
from av.video.frame import PictureType

from camctl.media.decode import HARDWARE_DECODERS, open_decoder, open_hardware_decoder
from camctl.media.hardware import why_not
from camctl.media.source import StreamInfo
from camctl.rules.encoders import ENCODERS

LOW_LATENCY: dict[str, dict[str, str]] = {
    "h264_nvenc": {"preset": "p1", "tune": "ll", "zerolatency": "1"},
    "hevc_nvenc": {"preset": "p1", "tune": "ll", "zerolatency": "1"},
    "libx264": {"preset": "veryfast", "tune": "zerolatency"},
}


@dataclass(frozen=True)
class CodecCheck:
    name: str
    kind: str  # encoder or decoder
    available: bool
    hardware: bool
    reason: str | None = None  # why it is not available
    fps: float | None = None  # measured 1080p frames per second (encoders)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "available": self.available, "hardware": self.hardware,
                "reason": self.reason, "fps_1080p": self.fps}  # fmt: skip


def open_encoder(
    name: str,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    bitrate: int = 2_000_000,
    gop: int = 30,
    time_base: Fraction | None = None,
    preset: str | None = None,
) -> Any:
    """An opened encoder; raises av's errors (or ValueError for an unknown name).

    time_base: of the frames' pts; by default one frame (a grid), 1/90000 for a camera's own clock.
    preset: instead of the low-latency default (libx264: the encoder ladder's steps).
    """
    enc: Any = av.CodecContext.create(name, "w")  # a video encoder: typed loosely, as PyAV's stubs are
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuv420p"
    enc.time_base = time_base or Fraction(1, fps)
    enc.framerate = Fraction(fps)
    enc.bit_rate = bitrate
    enc.gop_size = gop
    enc.max_b_frames = 0  # B-frames add a frame of latency per reorder
    enc.options = dict(LOW_LATENCY.get(name, {})) | ({"preset": preset} if preset else {})
    enc.open()
    return enc


def check_encoders(frames: int = 60) -> list[CodecCheck]:
    pictures = _test_pictures()
    checks = []
    for name in ENCODERS:
        try:
            enc = open_encoder(name)
        except (av.error.FFmpegError, ValueError) as exc:
            checks.append(CodecCheck(name, "encoder", False, name != "libx264", why_not(name, exc)))
            continue
        checks.append(CodecCheck(name, "encoder", True, name != "libx264", None, _encode_fps(enc, pictures, frames)))
    return checks


def check_decoders() -> list[CodecCheck]:
    checks = []
    for codec, names in HARDWARE_DECODERS.items():
        info = StreamInfo(codec, None, 1920, 1080, 30.0, Fraction(1, 90000), None, "probe")
        for name in names:
            opened = open_hardware_decoder(name, info)
            reason = opened if isinstance(opened, str) else None
            checks.append(CodecCheck(name, "decoder", reason is None, True, reason))
        software = open_decoder(info)
        checks.append(CodecCheck(software.codec.name, "decoder", True, False))
    return checks


def best_encoder(preferred: str = "auto") -> str:
    """The configured encoder, or with `auto` the first one that opens."""
    if preferred != "auto":
        return preferred
    for name in ENCODERS:
        try:
            open_encoder(name, 320, 240)
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    return "libx264"


def _test_pictures(count: int = 15) -> list[av.VideoFrame]:
    """Moving 1080p pictures: a still one would encode as skipped blocks and flatter the encoder."""
    pictures = []
    with av.open("testsrc2=size=1920x1080:rate=30", format="lavfi") as source:
        for frame in source.decode(video=0):
            pictures.append(frame.reformat(format="yuv420p"))
            if len(pictures) == count:
                break
    return pictures


def _encode_fps(enc: Any, pictures: list[av.VideoFrame], frames: int) -> float:
    started = time.perf_counter()
    for n in range(frames):
        picture = pictures[n % len(pictures)]
        picture.pts = n
        picture.pict_type = PictureType.NONE  # lavfi marks every frame I: let the encoder choose
        enc.encode(picture)
    enc.encode(None)
    return round(frames / (time.perf_counter() - started), 1)
