"""JPEG encoding of decoded frames with FFmpeg's mjpeg encoder (no RGB round trip)."""

from __future__ import annotations

from fractions import Fraction

import av
import av.video
from av.video.reformatter import VideoReformatter

DEFAULT_QUALITY = 85


def scaled_size(width: int, height: int, target_width: int | None) -> tuple[int, int]:
    """Keeps the aspect ratio; even sizes, never larger than the source."""
    if not target_width or target_width >= width:
        return width, height
    new_w = max(16, target_width - target_width % 2)
    new_h = max(16, round(height * new_w / width / 2) * 2)
    return new_w, new_h


def quality_to_qscale(quality: int) -> int:
    """Maps 1..100 (higher is better, as in most image tools) to mjpeg's qscale 31..2."""
    quality = min(100, max(1, quality))
    return round(31 - (quality - 1) * 29 / 99)


def encode_jpeg(frame: av.VideoFrame, quality: int = DEFAULT_QUALITY, width: int | None = None) -> bytes:
    out_w, out_h = scaled_size(frame.width, frame.height, width)
    # A reformatter of our own: frame.reformat() shares one per frame, and two threads encoding the
    # same frame at once (two HTTP clients) would race on its scaler and crash the process.
    picture = VideoReformatter().reformat(frame, width=out_w, height=out_h, format="yuvj420p")
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = out_w, out_h, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.qmin = enc.qmax = quality_to_qscale(quality)
    picture.pts = 0
    packets = enc.encode(picture) + enc.encode(None)
    return b"".join(bytes(p) for p in packets)
