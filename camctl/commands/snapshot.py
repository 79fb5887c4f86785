"""`camctl snapshot`: a JPEG of what the camera sees now."""

from __future__ import annotations

import time
from dataclasses import dataclass

from camctl.config import CameraConfig
from camctl.media.decode import first_frame, open_decoder
from camctl.media.jpeg import DEFAULT_QUALITY, encode_jpeg, scaled_size
from camctl.media.source import open_source


@dataclass(frozen=True)
class Snapshot:
    camera_id: str
    jpeg: bytes
    width: int
    height: int
    captured_at: float  # wall-clock UTC seconds when the picture arrived
    path: str  # "cold": straight from the camera


def cold_snapshot(
    camera: CameraConfig, quality: int = DEFAULT_QUALITY, width: int | None = None, timeout: float | None = None
) -> Snapshot:
    """Connect, decode from the first keyframe, encode, disconnect: waits at most one keyframe interval
    once the stream flows, and never longer than `timeout` in all."""
    limit = camera.timeout if timeout is None else timeout
    started = time.monotonic()
    with open_source(camera, limit) as source:
        frame, _ = first_frame(source.packets(), open_decoder(source.info), camera.id, started + limit)
        captured = time.time()
    jpeg = encode_jpeg(frame, quality, width)
    out_w, out_h = scaled_size(frame.width, frame.height, width)
    return Snapshot(camera.id, jpeg, out_w, out_h, captured, "cold")
