"""`camctl snapshot`: a JPEG of what the camera sees now."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from camctl.config import CameraConfig, HttpConfig, StreamView, stream_view
from camctl.errors import UsageError
from camctl.paths import default_data_dir
from camctl.signing import local_url
from camctl.storage.files import write_atomically

DEFAULT_QUALITY = 85  # as camctl.media.jpeg; not imported from there: the warm path must not load PyAV


@dataclass(frozen=True)
class Snapshot:
    camera_id: str
    jpeg: bytes
    width: int
    height: int
    captured_at: float  # wall-clock UTC seconds when the picture arrived
    path: str  # "cold": straight from the camera; "warm": from a running camctl's latest frame


def cold_snapshot(
    camera: StreamView, quality: int = DEFAULT_QUALITY, width: int | None = None, timeout: float | None = None
) -> Snapshot:
    """Connect, decode from the first keyframe, encode, disconnect: waits at most one keyframe interval
    once the stream flows, and never longer than `timeout` in all."""
    # PyAV is imported here, not at the top: a warm snapshot never needs it, and loading it is most
    # of a warm snapshot's time.
    from camctl.media.connect import open_source
    from camctl.media.decode import first_frame, open_decoder
    from camctl.media.jpeg import encode_jpeg, scaled_size

    limit = camera.timeout if timeout is None else timeout
    started = time.monotonic()
    with open_source(camera, limit) as source:
        frame, _ = first_frame(source.packets(), open_decoder(source.info), camera.id, started + limit)
        captured = time.time()
    jpeg = encode_jpeg(frame, quality, width)
    out_w, out_h = scaled_size(frame.width, frame.height, width)
    return Snapshot(camera.id, jpeg, out_w, out_h, captured, "cold")


def warm_snapshot(
    http: HttpConfig,
    camera: StreamView,
    quality: int = DEFAULT_QUALITY,
    width: int | None = None,
    timeout: float = 1.0,
) -> Snapshot | None:
    """The latest frame from a camctl running on this box (ingest or run-all), or None when none
    answers: a camera session is already open there, so no connect and no wait for a keyframe.
    camera: the view of the stream wanted (stream_of)."""
    options = {"quality": quality, **({"width": width} if width else {}), "stream": camera.stream}
    query = urllib.parse.urlencode(options)
    url = local_url(http, default_data_dir(), f"/{camera.id}/frame.jpg", query)
    if url is None:
        return None  # it needs credentials and nothing here has made its key: nothing is running
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own service
            if response.headers.get("Content-Type") != "image/jpeg":
                return None
            if response.headers.get("X-Camera-Url") != camera.display_url:
                return None  # a camctl with another config that also has a camera of this name
            jpeg = response.read()
            size = response.headers.get("X-Image-Size", "0x0")
            captured = float(response.headers.get("X-Frame-Timestamp", time.time()))
    except (OSError, ValueError):
        return None  # nothing listening, camera offline there (503), or not a camctl: go cold
    w, _, h = size.partition("x")
    return Snapshot(camera.id, jpeg, int(w or 0), int(h or 0), captured, "warm")


def stream_of(camera: CameraConfig, stream: str | None) -> StreamView:
    """The camera seen through the stream named, or its snapshot role's (main by default)."""
    name = stream or camera.roles.snapshot
    if name not in camera.streams:
        raise UsageError(f"{camera.id} has no stream {name!r} (streams: {', '.join(camera.streams)})")
    return stream_view(camera, name)


def snapshot(
    http: HttpConfig,
    camera: StreamView,
    quality: int = DEFAULT_QUALITY,
    width: int | None = None,
    timeout: float | None = None,
    cold: bool = False,
) -> Snapshot:
    """Warm from a running camctl when one has the camera, else cold from the camera itself."""
    shot = None if cold else warm_snapshot(http, camera, quality, width)
    return shot if shot is not None else cold_snapshot(camera, quality, width, timeout)


def save(shot: Snapshot, path: Path) -> None:
    """Written beside the target and renamed: a reader never sees half a JPEG (exit 5 on failure)."""
    write_atomically(path, shot.jpeg)
