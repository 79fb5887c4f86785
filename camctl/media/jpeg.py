"""JPEG encoding of decoded frames with FFmpeg's mjpeg encoder (no RGB round trip)."""

from __future__ import annotations

from fractions import Fraction

import av
import av.video
from av.video.reformatter import VideoReformatter

DEFAULT_QUALITY = 85


def jpeg_settings(quality: object, width: object) -> tuple[int, int | None]:
    """(quality, width) asked for by a client (HTTP query, NATS request): whole numbers, quality
    1-100, width 16-8192 or none. Anything else (text, 2.5, Infinity, 1e9) is a ValueError."""
    try:
        q = DEFAULT_QUALITY if quality is None else _whole(quality)
        w = None if width is None else _whole(width)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("quality and width are whole numbers") from None
    if not 1 <= q <= 100 or (w is not None and not 16 <= w <= 8192):
        raise ValueError("quality 1-100, width 16-8192")
    return q, w


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError
    number = float(value)
    if number != int(number):
        raise ValueError
    return int(number)


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
